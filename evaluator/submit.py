"""Submitting an image: the team-facing service behind the web form, the API and the CLI.

Upload: limits, quota and the team's storage first (nothing is read before they pass) → stream to disk with
a byte cap → check the archive and hash every layer against its digest (pure, no engine) → in one write
transaction: count the limits again, take the slot, move the archive to where nodes find it, write the
Submission row (queued) → load it into this node's engine without its tags, pinned by the verified ID →
dispatch. A refused upload leaves nothing: no temp file, no kept archive, no image on the engine.
Registry: the reference must name the team's own namespace by digest (intake.check_team_reference), then
the image is pulled from the center's registry and pinned. An image the checks refuse becomes a failed row
(image_rejected, with the reason), so the team sees why in its history. No Flask here.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from redis.exceptions import RedisError
from sqlmodel import Session, select

from challenges.models import Challenge, Outcome, Phase, Submission, SubmissionKind, SubmissionStatus, Team
from challenges.submissions import CHECK_RUNS_PER_DAY
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
    max_team_image_bytes: int | None = None   # the team's stored archives, all together (None: no cap)
    check_runs_per_day: int = CHECK_RUNS_PER_DAY

    @classmethod
    def from_config(cls, config: Any) -> IntakeSettings:
        return cls(data_dir=config["DATA_DIR"], max_image_bytes=int(config["MAX_IMAGE_BYTES"]),
                   redis_url=config.get("REDIS_URL"), max_layers=int(config.get("MAX_IMAGE_LAYERS", 64)),
                   registry_allowlist=tuple(config.get("REGISTRY_ALLOWLIST", ())),
                   max_team_image_bytes=int(config["MAX_TEAM_IMAGE_BYTES"]) if config.get("MAX_TEAM_IMAGE_BYTES")
                   else None,
                   check_runs_per_day=int(config.get("CHECK_RUNS_PER_DAY") or CHECK_RUNS_PER_DAY))


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
    kind: str = SubmissionKind.SUBMISSION   # what the page offers: a submission or a check run
    registry_namespace: str = ""      # where the team pushes in the center's registry (intake.team_namespace)


def _visible_challenge(session: Session, slug: str, user: User | None) -> Challenge:
    """The challenge at this address as `user` may see it: a draft is not there but for its own city."""
    from challenges.challenges import require_visible

    challenge = seams.challenge_by_slug(session, slug)
    require_visible(user, challenge)
    return challenge


def context(session: Session, slug: str, user: User, kind: str = SubmissionKind.SUBMISSION,
            check_runs_per_day: int = CHECK_RUNS_PER_DAY) -> SubmitContext:
    challenge = _visible_challenge(session, slug, user)
    phase = seams.current_phase(session, challenge)
    team = seams.team_for_user(session, challenge.id, user.id) if user is not None else None  # type: ignore[arg-type]
    refusal: DomainError | None = None
    try:
        _check(session, challenge, phase, team, kind, check_runs_per_day)
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
    from evaluator.intake import team_namespace

    return SubmitContext(challenge, phase, team, str(refusal) if refusal else None, refusal, quota, waiting,
                         workers, est, kind,
                         registry_namespace=team_namespace(team.id) if team is not None else "")  # type: ignore[arg-type]


def _check(session: Session, challenge: Challenge, phase: Phase | None, team: Team | None,
           kind: str = SubmissionKind.SUBMISSION, check_runs_per_day: int = CHECK_RUNS_PER_DAY) -> tuple[Phase, Team]:
    if phase is None:
        raise DomainError(N_("No phase of this challenge is open for submissions now."), code="closed")
    if team is None:
        raise DomainError(N_("Join or create a team for this challenge before you submit."), code="no_team")
    seams.check_can_submit(session, team.id, phase.id, kind=kind,  # type: ignore[arg-type]
                           check_runs_per_day=check_runs_per_day)
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
                  filename: str = "", kind: str = SubmissionKind.SUBMISSION) -> Submission:
    """A `docker save` archive read from `stream` (never held in memory) → a queued or rejected submission."""
    from evaluator import intake
    from evaluator.jobs import image_archive_path

    challenge = _visible_challenge(session, slug, user)
    phase, team = _check(session, challenge, seams.current_phase(session, challenge),
                         seams.team_for_user(session, challenge.id, user.id),  # type: ignore[arg-type]
                         kind, settings.check_runs_per_day)
    if settings.max_team_image_bytes is not None:
        # Refused before a byte is read when the team's storage is full. Whether this image still fits is known
        # once it is hashed (the same image again stores nothing new), inside the transaction that writes the row.
        seams.check_image_storage(session, team.id, settings.max_team_image_bytes)  # type: ignore[arg-type]
    uploads = Path(settings.data_dir) / "uploads"
    dest = uploads / f"{uuid.uuid4().hex}.tar"
    ref = Path(filename or "upload.tar").name[:300]
    keep: Path | None = None
    placed = False

    def place() -> None:
        # Runs with the team's slot taken, inside the transaction that writes the row: a refused upload never
        # gets here, so it keeps nothing.
        nonlocal placed
        assert keep is not None
        keep.parent.mkdir(parents=True, exist_ok=True)
        if not keep.exists():
            dest.replace(keep)
            placed = True

    try:
        try:
            intake.stream_upload_to_file(stream, dest, settings.max_image_bytes)
            # Pure checks: the archive's structure and every layer against its digest, before any engine sees it.
            info = intake.check_image_tar(dest, max_bytes=settings.max_image_bytes, max_layers=settings.max_layers)
        except intake.ImageRejected as err:
            return _rejected(session, team, phase, user, "upload", ref, err, kind, settings)
        keep = image_archive_path(settings.data_dir, info.image_id)
        try:
            sub = seams.create_submission(session, team_id=team.id, phase_id=phase.id, user_id=user.id,
                                          image_source="upload", image_ref=ref, image_id=info.image_id, kind=kind,
                                          check_runs_per_day=settings.check_runs_per_day, image_bytes=info.size,
                                          max_team_image_bytes=settings.max_team_image_bytes, on_slot=place)
        except BaseException:
            if placed:
                keep.unlink(missing_ok=True)
            raise
    finally:
        dest.unlink(missing_ok=True)
    _load_now(session, sub, keep, info.image_id)
    return _dispatch(session, settings, sub)


def _load_now(session: Session, sub: Submission, keep: Path, image_id: str) -> None:
    """Load the kept archive into this node's engine now (a worker node loads it itself when it lacks it).

    The engine gets the archive without its names (intake.load_image), so no tag on the node moves. Should the
    engine still refuse the verified archive, the submission ends as image_rejected and its archive goes, unless
    another submission uses the same image.
    """
    from evaluator import intake, state
    from evaluator.sandbox import SandboxInfraError

    try:
        intake.load_image(_docker(), keep, expected_id=image_id)
    except intake.ImageRejected as err:
        state.fail(session, sub.id, Outcome.IMAGE_REJECTED, str(err.args[0] if err.args else err),  # type: ignore[arg-type]
                   attempt=0)
        if session.exec(select(Submission.id).where(Submission.image_id == image_id,
                                                    Submission.id != sub.id)).first() is None:
            keep.unlink(missing_ok=True)
    except (SandboxInfraError, ServiceUnavailable) as err:
        log.warning("image %s of submission %s is not loaded here (%s); the worker loads it", image_id[:19],
                    sub.id, err)


def submit_registry(session: Session, *, slug: str, user: User, reference: str,
                    settings: IntakeSettings, kind: str = SubmissionKind.SUBMISSION) -> Submission:
    """An image in the center's registry, pulled now and pinned by digest → a queued or rejected submission."""
    from evaluator import intake
    from evaluator.sandbox import SandboxInfraError

    reference = (reference or "").strip()
    if not reference:
        raise DomainError(N_("Name the image in your team's namespace of the center's registry by its digest, e.g. "
                             "registry.example:5000/team-7/model@sha256:…"), field="image")
    challenge = _visible_challenge(session, slug, user)
    phase, team = _check(session, challenge, seams.current_phase(session, challenge),
                         seams.team_for_user(session, challenge.id, user.id),  # type: ignore[arg-type]
                         kind, settings.check_runs_per_day)
    try:
        intake.check_team_reference(reference, intake.team_namespace(team.id),  # type: ignore[arg-type]
                                    settings.registry_allowlist)
        image_id, repo_digest = intake.pull_image(_docker(), reference, settings.registry_allowlist)
    except intake.ImageRejected as err:
        return _rejected(session, team, phase, user, "registry", reference[:300], err, kind, settings)
    except SandboxInfraError as err:
        raise ServiceUnavailable(N_("The center's registry or Docker is not answering. Nothing was submitted; "
                                    "try again in a few minutes.")) from err
    return _queue(session, settings, team, phase, user, "registry", repo_digest[:300], image_id, kind)


def submit_image_id(session: Session, *, slug: str, user: User, image_id: str, image_ref: str,
                    redis_url: str | None, kind: str = SubmissionKind.SUBMISSION) -> Submission:
    """An image already loaded on this node (the demo's baselines) → a queued submission (or check run)."""
    challenge = seams.challenge_by_slug(session, slug)
    settings = IntakeSettings(data_dir="", max_image_bytes=0, redis_url=redis_url)
    phase, team = _check(session, challenge, seams.current_phase(session, challenge),
                         seams.team_for_user(session, challenge.id, user.id),  # type: ignore[arg-type]
                         kind, settings.check_runs_per_day)
    return _queue(session, settings, team, phase, user, "upload", image_ref, image_id, kind)


def _rejected(session: Session, team: Team, phase: Phase, user: User, source: str, ref: str,
              err: DomainError, kind: str, settings: IntakeSettings) -> Submission:
    reason = err.args[0] if err.args else str(err)
    return seams.create_submission(session, team_id=team.id, phase_id=phase.id, user_id=user.id,
                                   image_source=source, image_ref=ref, image_id="",
                                   status=SubmissionStatus.FAILED, outcome=Outcome.IMAGE_REJECTED, reason=reason,
                                   kind=kind, check_runs_per_day=settings.check_runs_per_day)


def _queue(session: Session, settings: IntakeSettings, team: Team, phase: Phase, user: User, source: str,
           ref: str, image_id: str, kind: str = SubmissionKind.SUBMISSION) -> Submission:
    # The row first: once it exists nothing can lose the submission, whatever happens to Redis next.
    sub = seams.create_submission(session, team_id=team.id, phase_id=phase.id, user_id=user.id,
                                  image_source=source, image_ref=ref, image_id=image_id, kind=kind,
                                  check_runs_per_day=settings.check_runs_per_day)
    return _dispatch(session, settings, sub)


def _dispatch(session: Session, settings: IntakeSettings, sub: Submission) -> Submission:
    """Feed the queues now that the row exists (or leave it to the reaper when Redis is not answering)."""
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
    readable = seams.can_read_log(session, viewer, sub)
    # A withheld log is never read, from the row or from the live tail in Redis.
    text = sub.log_excerpt if readable else ""
    if readable and sub.status == SubmissionStatus.RUNNING and redis_url:
        try:
            text = queues.read_live_log(queues.connect(redis_url), sub.id, sub.attempt).decode(  # type: ignore[arg-type]
                "utf-8", "replace")
        except RedisError:
            text = ""
    return {
        "id": sub.id, "kind": sub.kind, "status": sub.status, "outcome": sub.outcome,
        "outcome_text": seams.describe_outcome(sub.status, sub.outcome),
        "reason": seams.visible_reason(sub, readable),
        "exit_code": sub.exit_code, "attempt": sub.attempt, "position": info.position, "workers": info.workers,
        "est_wait_s": info.est_wait_s, "log": text, "log_withheld": not readable,
        "done": sub.status in (SubmissionStatus.SCORED, SubmissionStatus.FAILED, SubmissionStatus.CANCELLED),
    }
