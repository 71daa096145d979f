"""Submitting an image: the team-facing service behind the web form, the API and the CLI.

Upload: limits and quota first (nothing is read before they pass) → stream to disk with a byte cap →
check the archive → load it and pin the image ID → keep the archive (another node may need to load it) →
write the Submission row (queued) → dispatch. Registry: the same, with a pull from the center's registry
pinned by digest instead of the upload. An image the checks refuse becomes a failed row (image_rejected,
with the reason), so the team sees why in its history. No Flask here.
"""
from __future__ import annotations

import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from redis.exceptions import RedisError
from sqlmodel import Session

from challenges.models import Challenge, Outcome, Phase, Submission, SubmissionStatus, Team
from evaluator import dispatch, queues, seams
from hub.errors import DomainError, N_
from hub.models import User

log = logging.getLogger(__name__)


class ServiceUnavailable(DomainError):
    status = 503
    code = "unavailable"


@dataclass(frozen=True)
class IntakeSettings:
    data_dir: str
    max_image_bytes: int
    redis_url: str | None
    max_layers: int = 64
    registry_allowlist: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Any) -> IntakeSettings:
        return cls(data_dir=config["DATA_DIR"], max_image_bytes=int(config["MAX_IMAGE_BYTES"]),
                   redis_url=config.get("REDIS_URL"), max_layers=int(config.get("MAX_IMAGE_LAYERS", 64)),
                   registry_allowlist=tuple(config.get("REGISTRY_ALLOWLIST", ())))


@dataclass
class SubmitContext:
    """Where a team stands before it submits."""

    challenge: Challenge
    phase: Phase | None
    team: Team | None
    refusal: str | None               # why it may not submit now (an English msgid, already formatted)
    refusal_error: DomainError | None
    quota_left_s: float | None
    waiting: int                      # submissions of its accelerator class waiting or queued
    workers: int
    est_wait_s: float | None


def _visible_challenge(session: Session, slug: str, user: User | None) -> Challenge:
    """The challenge at this address as `user` may see it: a draft is not there but for its own city."""
    from challenges.challenges import require_visible

    challenge = seams.challenge_by_slug(session, slug)
    require_visible(user, challenge)
    return challenge


def context(session: Session, slug: str, user: User) -> SubmitContext:
    challenge = _visible_challenge(session, slug, user)
    phase = seams.current_phase(session, challenge)
    team = seams.team_for_user(session, challenge.id, user.id) if user is not None else None  # type: ignore[arg-type]
    refusal: DomainError | None = None
    try:
        _check(session, challenge, phase, team)
    except DomainError as err:
        refusal = err
    quota = None
    if team is not None:
        from evaluator.quota.team_quota import remaining_seconds

        quota = remaining_seconds(session, team.id, challenge.id)  # type: ignore[arg-type]
    cls = queues.accel_class_of(challenge.accelerators, challenge.accelerator_class)
    backlog = dispatch.backlogs(session, cls).get(cls, dispatch.Backlog(cls))
    waiting = len(backlog.waiting) + len(backlog.dispatched)
    workers = len(dispatch.live_workers(session, cls))
    est = None
    if workers:
        per_run = dispatch.average_runtime(session, cls)
        est = -(-(waiting + 1) // workers) * per_run
    return SubmitContext(challenge, phase, team, str(refusal) if refusal else None, refusal, quota, waiting,
                         workers, est)


def _check(session: Session, challenge: Challenge, phase: Phase | None, team: Team | None) -> tuple[Phase, Team]:
    if phase is None:
        raise DomainError(N_("No phase of this challenge is open for submissions now."), code="closed")
    if team is None:
        raise DomainError(N_("Join or create a team for this challenge before you submit."), code="no_team")
    seams.check_can_submit(session, team.id, phase.id)  # type: ignore[arg-type]
    seams.check_submit_quota(session, team.id, challenge.id)  # type: ignore[arg-type]
    return phase, team


def _docker() -> Any:
    from evaluator.jobs import docker_client

    try:
        return docker_client()
    except Exception as err:  # noqa: BLE001 - any failure to reach the engine
        raise ServiceUnavailable(N_("The evaluation service is not reachable right now. Nothing was submitted; "
                                    "try again in a few minutes.")) from err


def submit_upload(session: Session, *, slug: str, user: User, stream: IO[bytes], settings: IntakeSettings,
                  filename: str = "") -> Submission:
    """A `docker save` archive read from `stream` (never held in memory) → a queued or rejected submission."""
    from evaluator import intake
    from evaluator.jobs import image_archive_path
    from evaluator.sandbox import SandboxInfraError

    challenge = _visible_challenge(session, slug, user)
    phase, team = _check(session, challenge, seams.current_phase(session, challenge),
                         seams.team_for_user(session, challenge.id, user.id))  # type: ignore[arg-type]
    uploads = Path(settings.data_dir) / "uploads"
    dest = uploads / f"{uuid.uuid4().hex}.tar"
    ref = Path(filename or "upload.tar").name[:300]
    try:
        try:
            intake.stream_upload_to_file(stream, dest, settings.max_image_bytes)
            info = intake.check_image_tar(dest, max_bytes=settings.max_image_bytes, max_layers=settings.max_layers)
            client = _docker()
            image_id = intake.load_image(client, dest, expected_id=info.image_id)
        except intake.ImageRejected as err:
            return _rejected(session, team, phase, user, "upload", ref, err)
        except SandboxInfraError as err:
            raise ServiceUnavailable(N_("The evaluation service could not load the image. Nothing was submitted; "
                                        "try again in a few minutes.")) from err
        keep = image_archive_path(settings.data_dir, image_id)
        keep.parent.mkdir(parents=True, exist_ok=True)
        if not keep.exists():
            shutil.move(str(dest), keep)
    finally:
        dest.unlink(missing_ok=True)
    return _queue(session, settings, team, phase, user, "upload", ref, image_id)


def submit_registry(session: Session, *, slug: str, user: User, reference: str,
                    settings: IntakeSettings) -> Submission:
    """An image in the center's registry, pulled now and pinned by digest → a queued or rejected submission."""
    from evaluator import intake
    from evaluator.sandbox import SandboxInfraError

    reference = (reference or "").strip()
    if not reference:
        raise DomainError(N_("Name the image in the center's registry, e.g. registry.example:5000/team/model:v1."),
                          field="image")
    challenge = _visible_challenge(session, slug, user)
    phase, team = _check(session, challenge, seams.current_phase(session, challenge),
                         seams.team_for_user(session, challenge.id, user.id))  # type: ignore[arg-type]
    try:
        image_id, repo_digest = intake.pull_image(_docker(), reference, settings.registry_allowlist)
    except intake.ImageRejected as err:
        return _rejected(session, team, phase, user, "registry", reference[:300], err)
    except SandboxInfraError as err:
        raise ServiceUnavailable(N_("The center's registry or Docker is not answering. Nothing was submitted; "
                                    "try again in a few minutes.")) from err
    return _queue(session, settings, team, phase, user, "registry", repo_digest[:300], image_id)


def submit_image_id(session: Session, *, slug: str, user: User, image_id: str, image_ref: str,
                    redis_url: str | None) -> Submission:
    """An image already loaded on this node (the demo's baselines) → a queued submission."""
    challenge = seams.challenge_by_slug(session, slug)
    phase, team = _check(session, challenge, seams.current_phase(session, challenge),
                         seams.team_for_user(session, challenge.id, user.id))  # type: ignore[arg-type]
    settings = IntakeSettings(data_dir="", max_image_bytes=0, redis_url=redis_url)
    return _queue(session, settings, team, phase, user, "upload", image_ref, image_id)


def _rejected(session: Session, team: Team, phase: Phase, user: User, source: str, ref: str,
              err: DomainError) -> Submission:
    reason = err.args[0] if err.args else str(err)
    return seams.create_submission(session, team_id=team.id, phase_id=phase.id, user_id=user.id,
                                   image_source=source, image_ref=ref, image_id="",
                                   status=SubmissionStatus.FAILED, outcome=Outcome.IMAGE_REJECTED, reason=reason)


def _queue(session: Session, settings: IntakeSettings, team: Team, phase: Phase, user: User, source: str,
           ref: str, image_id: str) -> Submission:
    # The row first: once it exists nothing can lose the submission, whatever happens to Redis next.
    sub = seams.create_submission(session, team_id=team.id, phase_id=phase.id, user_id=user.id,
                                  image_source=source, image_ref=ref, image_id=image_id)
    if settings.redis_url:
        try:
            dispatch.feed(session, queues.connect(settings.redis_url))
        except RedisError:
            log.warning("Redis is not answering; the reaper dispatches submission %s when it is back", sub.id)
    return session.get(Submission, sub.id, populate_existing=True) or sub


# ---------------------------------------------------------------- watching a submission
def submission_status(session: Session, *, submission_id: int, viewer: User | None,
                      redis_url: str | None) -> dict[str, Any]:
    """What the live page shows: status, outcome (msgid), reason, queue position, wait, and the log so far."""
    sub = seams.get_submission_for_viewer(session, submission_id, viewer)
    info = dispatch.queue_position(session, sub.id)  # type: ignore[arg-type]
    text = sub.log_excerpt
    if sub.status == SubmissionStatus.RUNNING and redis_url:
        try:
            text = queues.read_live_log(queues.connect(redis_url), sub.id, sub.attempt).decode(  # type: ignore[arg-type]
                "utf-8", "replace")
        except RedisError:
            text = ""
    return {
        "id": sub.id, "status": sub.status, "outcome": sub.outcome,
        "outcome_text": seams.describe_outcome(sub.status, sub.outcome), "reason": sub.reason,
        "exit_code": sub.exit_code, "attempt": sub.attempt, "position": info.position, "workers": info.workers,
        "est_wait_s": info.est_wait_s, "log": text,
        "done": sub.status in (SubmissionStatus.SCORED, SubmissionStatus.FAILED, SubmissionStatus.CANCELLED),
    }
