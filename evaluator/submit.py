"""Submitting an image: the team-facing service behind the web form, the API and the CLI.

Upload: limits, quota and the team's storage first (nothing is read before they pass) → stream to disk with
a byte cap → check the archive and hash every layer against its digest (pure, no engine) → push its layers
and config into `team-<id>/sub` of the center's registry (evaluator.registry, no engine: the web process needs
no Docker socket) → in one write transaction: count the limits again, take the slot, PUT the manifest by
digest, write the Submission row (queued; `image_ref` the uploaded file's name as the team knows it, `image_pull`
the pull reference `host:port/team-7/sub@sha256:…`, `image_id` the config digest a node checks after pulling) → dispatch. A refused upload leaves no temp file
and no manifest (its blobs are unreferenced: the registry's garbage collection removes them).
Without a configured registry (REGISTRY_URL unset) the archive is kept under data_dir/images and loaded into
this engine instead, as before the registry existed.
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
from evaluator import dispatch, intake, nodes, queues, seams
from evaluator.registry import PushedImage, RegistryError, RegistryRef, push_image_tar, put_manifest, repository_for
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
    registry: RegistryRef | None = None       # where uploads go (None: kept archive + docker load, the old way)

    @classmethod
    def from_config(cls, config: Any) -> IntakeSettings:
        return cls(data_dir=config["DATA_DIR"], max_image_bytes=int(config["MAX_IMAGE_BYTES"]),
                   redis_url=config.get("REDIS_URL"), max_layers=int(config.get("MAX_IMAGE_LAYERS", 64)),
                   registry_allowlist=tuple(config.get("REGISTRY_ALLOWLIST", ())),
                   max_team_image_bytes=int(config["MAX_TEAM_IMAGE_BYTES"]) if config.get("MAX_TEAM_IMAGE_BYTES")
                   else None,
                   check_runs_per_day=int(config.get("CHECK_RUNS_PER_DAY") or CHECK_RUNS_PER_DAY),
                   registry=RegistryRef.from_config(config))


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
            check_runs_per_day: int = CHECK_RUNS_PER_DAY, redis_url: str | None = None) -> SubmitContext:
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
    waiting = sum(g.waiting + g.dispatched for g in dispatch.groups(session, cls).get(cls, {}).values())
    try:
        workers = nodes.live_count(queues.connect(redis_url), cls) if redis_url else 0
    except RedisError:
        workers = 0     # the page still says where the team stands; no estimate without the workers
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
    if settings.registry is not None:
        return _upload_to_registry(session, settings, settings.registry, team, phase, user, stream, dest, ref, kind)
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
            info = _receive(stream, dest, settings)
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


def _receive(stream: IO[bytes], dest: Path, settings: IntakeSettings) -> intake.ImageTarInfo:
    """Stream the upload to `dest` under the byte cap, then the pure checks (the archive's structure and every
    layer against its digest) before any engine or registry sees it."""
    intake.stream_upload_to_file(stream, dest, settings.max_image_bytes)
    return intake.check_image_tar(dest, max_bytes=settings.max_image_bytes, max_layers=settings.max_layers)


_REGISTRY_DOWN = N_("The center's image registry is not answering. Nothing was submitted; try again in a few "
                    "minutes.")


def _upload_to_registry(session: Session, settings: IntakeSettings, registry: RegistryRef, team: Team, phase: Phase,
                        user: User, stream: IO[bytes], dest: Path, filename: str, kind: str) -> Submission:
    """The upload path with the center's registry: check, push the blobs, then the manifest with the slot taken."""
    repository = repository_for(team.id)  # type: ignore[arg-type]
    try:
        try:
            info = _receive(stream, dest, settings)
            # Blobs only: a refused submission must not leave a manifest (unreferenced blobs are collected).
            pushed = push_image_tar(registry, repository, dest, info, team_id=team.id, with_manifest=False)
        except intake.ImageRejected as err:
            return _rejected(session, team, phase, user, "upload", filename, err, kind, settings)
        except RegistryError as err:
            log.warning("upload of team %s not pushed: %s", team.id, err)
            raise ServiceUnavailable(_REGISTRY_DOWN) from err
    finally:
        dest.unlink(missing_ok=True)
    sub = _create_pushed(session, settings, registry, repository, pushed, info.size, team, phase, user, kind,
                         filename)
    return _dispatch(session, settings, sub)


def _create_pushed(session: Session, settings: IntakeSettings, registry: RegistryRef, repository: str,
                   pushed: PushedImage, size: int, team: Team, phase: Phase, user: User, kind: str,
                   filename: str) -> Submission:
    """Write the row of a pushed image; its manifest goes up inside that transaction, once the slot is taken."""
    try:
        return seams.create_submission(
            session, team_id=team.id, phase_id=phase.id, user_id=user.id, image_source="upload",
            image_ref=filename, image_pull=registry.reference(repository, pushed.manifest_digest),
            image_id=pushed.config_digest,
            kind=kind, check_runs_per_day=settings.check_runs_per_day, image_bytes=size,
            max_team_image_bytes=settings.max_team_image_bytes,
            on_slot=lambda: put_manifest(registry, repository, pushed))
    except RegistryError as err:
        log.warning("manifest of team %s not pushed: %s", team.id, err)
        raise ServiceUnavailable(_REGISTRY_DOWN) from err


def _load_now(session: Session, sub: Submission, keep: Path, image_id: str) -> None:
    """Load the kept archive into this node's engine now (a worker node loads it itself when it lacks it).

    The engine gets the archive without its names (intake.load_image), so no tag on the node moves. Should the
    engine still refuse the verified archive, the submission ends as image_rejected and its archive goes, unless
    another submission uses the same image.
    """
    from evaluator import state
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
                                  image_pull=ref if source == "registry" else "",
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
