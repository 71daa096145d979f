"""The RQ entry points: the only place where the database, RQ and Docker meet.

`evaluate(submission_id, attempt)` runs in a worker's work horse:
claim the row (compare-and-set, evaluator.state) → lease devices → make sure the pinned image is on this
node → run it in the sandbox, streaming its log to Redis for the live tail → meter the container's own
seconds → score outside the container → write the outcome → release → top up the queue.
A team's failure (time, memory, exit code, output) is a final status, never an exception. Only an
infrastructure error raises, so that RQ's bounded Retry runs the same job again; on the last try the
submission fails as infra_error, which never counts against the team.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker
import docker.errors
from redis import Redis
from redis.exceptions import RedisError
from rq import get_current_job
from sqlmodel import Session, select

from challenges.models import Challenge, Outcome, Phase, Submission, SubmissionKind, SubmissionStatus
from challenges.scoring import ScoreContext, ScorerRun, ScoreRefused, ScoringUnavailable, scorer_for
from evaluator import dispatch, instance, intake, nodes, queues, sandbox, seams, state
from evaluator.intake import ImageRejected
from evaluator.models import WorkerNode
from evaluator.quota import ledger, leases, team_quota
from evaluator.reaper import SweepReport, give_back
from evaluator.sandbox import SandboxInfraError
from hub.audit import record
from hub.config import load_config
from hub.db import session_scope
from hub.errors import N_, NotFound

log = logging.getLogger(__name__)

LOG_CAP_BYTES = 256 * 1024        # what a container may print (the sandbox caps it too)
LIVE_LOG_CAP_BYTES = 256 * 1024
# Only a backstop now: a lease is released by its run, or by the reaper once the run's node stops listing it.
LEASE_TTL_S = 24 * 3600.0


class InfraError(Exception):
    """The platform, not the team, failed: retried, then failed as infra_error."""


@dataclass
class Runtime:
    """What a work horse needs to know about the platform (set by the worker before it forks)."""

    database_url: str
    redis_url: str
    data_dir: str
    node: str
    max_image_bytes: int = 2 * 1024 * 1024 * 1024
    registry_allowlist: tuple[str, ...] = ()
    devices: tuple[dict[str, Any], ...] = ()     # this node's inventory


_runtime: Runtime | None = None
_docker: dict[int, Any] = {}


def configure(runtime: Runtime) -> None:
    global _runtime
    _runtime = runtime


def runtime() -> Runtime:
    if _runtime is None:
        # A horse started without a configured worker (e.g. `rq worker`): read the same environment.

        cfg = load_config(os.environ.get("HUB_INSTANCE") or "instance")
        configure(Runtime(database_url=cfg["DATABASE_URL"], redis_url=cfg["REDIS_URL"] or "",
                          data_dir=cfg["DATA_DIR"], node=os.environ.get("HUB_NODE_NAME", "worker")))
    assert _runtime is not None
    return _runtime


def docker_client() -> Any:
    """One Docker client per process (a forked horse never shares its parent's connections)."""
    pid = os.getpid()
    client = _docker.get(pid)
    if client is None:

        client = docker.from_env(timeout=120)
        _docker.clear()
        _docker[pid] = client
    return client


def image_archive_path(data_dir: str | Path, image_id: str) -> Path:
    """Where an uploaded archive is kept, so a node that lacks the image can load it again."""
    return Path(data_dir) / "images" / f"{image_id.replace('sha256:', '')}.tar"


# ---------------------------------------------------------------- the job
def evaluate(submission_id: int, attempt: int) -> str:
    """RQ job `sub-<id>-a<attempt>`: evaluate one attempt of one submission (see the module docstring)."""
    rt = runtime()
    conn = queues.connect(rt.redis_url)
    with session_scope(rt.database_url) as session:
        try:
            return _evaluate(session, conn, rt, submission_id, attempt)
        finally:
            try:
                dispatch.feed(session, conn)
            except RedisError:
                log.exception("could not top up the queue after submission %s", submission_id)


def _evaluate(session: Session, conn: Redis, rt: Runtime, submission_id: int, attempt: int) -> str:
    if not state.claim(session, submission_id, attempt, rt.node):
        return _not_claimed(session, submission_id, attempt)
    sub = state.get(session, submission_id)
    challenge = session.get(Challenge, sub.challenge_id)
    phase = session.get(Phase, sub.phase_id)
    assert challenge is not None and phase is not None
    accel_class = queues.accel_class_of(challenge.accelerators, challenge.accelerator_class)
    lease = None
    keep_lease = False
    try:
        if challenge.accelerators > 0:
            most = _largest_node(session, accel_class, rt, conn)
            if challenge.accelerators > most:
                state.fail(session, submission_id, Outcome.INFRA_ERROR,
                           f"No worker node has {challenge.accelerators} devices of class {accel_class} "
                           f"(the largest has {most}).", attempt=attempt)
                return Outcome.INFRA_ERROR
            lease = leases.acquire(session, submission_id=submission_id, attempt=attempt,
                                        challenge_id=challenge.id, accel_class=accel_class,  # type: ignore[arg-type]
                                        count=challenge.accelerators, node=rt.node, ttl_s=LEASE_TTL_S)
            if lease is None:
        
                if leases.attempt_ended(session, submission_id, attempt):
                    # RQ retried this attempt after an infrastructure error, but its lease ended meanwhile
                    # (it expired, or a sweep released it): it never comes back to this attempt, and its
                    # devices may be another run's by now. Retrying the same attempt cannot help.
                    why = "its device lease ended before the retry could run"
                else:
                    # No free device on this node now: a race the dispatcher's free-device check narrows.
                    time.sleep(0.5)
                    why = "no device was free on node " + rt.node
                # Either way the work goes to a new attempt, and the hand-back is counted as the platform's
                # failure and bounded by HUB_MAX_ATTEMPTS, so a submission can never cycle for ever.
                give_back(session, state.get(session, submission_id), why, SweepReport())
                return "no-device"
        result = run_attempt(session, conn, rt, sub, challenge, phase, accel_class, lease)
        if not state.finish(session, submission_id, attempt, result):
            log.warning("submission %s attempt %s lost its claim; result dropped", submission_id, attempt)
            return "superseded"
        return result.outcome
    except InfraError as err:
        keep_lease = True   # RQ runs this same attempt again: it gets the same lease back
        return _infra_failure(session, submission_id, attempt, str(err))
    except Exception as err:  # noqa: BLE001 - an unforeseen error is the platform's, never the team's
        log.exception("submission %s attempt %s: unexpected error", submission_id, attempt)
        session.rollback()
        keep_lease = True
        return _infra_failure(session, submission_id, attempt, f"{err.__class__.__name__}: {err}")
    finally:
        if lease is not None and not (keep_lease and _will_retry()):
            leases.release(session, lease.id)


def _will_retry() -> bool:

    job = get_current_job()
    return bool(job is not None and job.retries_left)


def _largest_node(session: Session, accel_class: str, rt: Runtime, conn: Redis) -> int:
    """The most devices of a class that one node has: this one, or another live one."""
    return max(dispatch.devices_of_class(rt.devices, accel_class), dispatch.largest_node(session, accel_class, conn))


def _not_claimed(session: Session, submission_id: int, attempt: int) -> str:
    sub = session.get(Submission, submission_id, populate_existing=True)
    if sub is not None and sub.status == SubmissionStatus.RUNNING and sub.attempt == attempt:
        # This very job is running again: RQ retried it after its work horse died mid-run. Its old
        # container may still run; stop it and give the work a fresh attempt.
        try:

            sandbox.kill_and_remove(docker_client(), container_name(session, submission_id, attempt))
        except Exception:  # noqa: BLE001 - the reaper removes it otherwise
            log.exception("could not remove the container of submission %s attempt %s", submission_id, attempt)

        give_back(session, sub, "its work horse died", SweepReport())
        return "recovered"
    return "skipped"


def _infra_failure(session: Session, submission_id: int, attempt: int, detail: str) -> str:

    job = get_current_job()
    if job is not None and job.retries_left:
        log.warning("submission %s attempt %s: infrastructure error, retrying: %s", submission_id, attempt, detail)
        try:
            state.retry_later(session, submission_id, attempt)
        except Exception:  # noqa: BLE001 - the database itself may be what failed; the rerun finds the row running
            session.rollback()
            log.exception("submission %s attempt %s: could not mark it for retry", submission_id, attempt)
        # Back off (2 s, then 4 s) so a flapping engine or a briefly locked database can recover.
        time.sleep(2.0 * (1 + queues.INFRA_RETRIES - job.retries_left))
        raise InfraError(detail)
    state.fail(session, submission_id, Outcome.INFRA_ERROR,
               f"Platform error after {1 + queues.INFRA_RETRIES} tries: {detail}", attempt=attempt)
    return Outcome.INFRA_ERROR


def container_name(session: Session, submission_id: int, attempt: int) -> str:
    """The sandbox container name of one attempt of this platform instance (evaluator.instance)."""
    return state.container_name_for(submission_id, attempt, instance=instance.of_session(session))


def container_labels(session: Session, node: str, submission_id: int, attempt: int) -> dict[str, str]:
    """Labels that say whose a container is: the reaper removes only its own instance's orphans."""
    return {instance.LABEL: instance.of_session(session), instance.NODE_LABEL: node,
            "hub.submission": str(submission_id), "hub.attempt": str(attempt)}


# ---------------------------------------------------------------- one attempt
def run_attempt(session: Session, conn: Redis, rt: Runtime, sub: Submission, challenge: Challenge, phase: Phase,
                accel_class: str, lease: Any | None) -> state.Result:
    """Run the image in the sandbox and score it; returns the final result (raises InfraError only)."""


    attempt = sub.attempt
    name = container_name(session, sub.id, attempt)  # type: ignore[arg-type]
    labels = container_labels(session, rt.node, sub.id, attempt)  # type: ignore[arg-type]
    dataset = seams.dataset_for(session, challenge.id, phase.split)  # type: ignore[arg-type]
    if dataset is None:
        raise InfraError(f"the challenge has no test data for split {phase.split!r}")
    workdir = Path(rt.data_dir) / "runs" / name
    input_dir, truth_path = Path(dataset.inputs_dir), dataset.truth_path
    try:
        if sub.kind == SubmissionKind.CHECK:
            # A check run reads the public sample, never the split's hidden test inputs.
            sample = sample_inputs(seams.sample_archive(dataset), workdir)
            if sample is None:
                return state.Result(SubmissionStatus.FAILED, Outcome.INFRA_ERROR,
                                    "The phase's public sample is no longer there; the check run could not start.",
                                    counts_against_limit=False)
            input_dir, truth_path = sample[0], str(sample[1])
        try:
            client = docker_client()
        except docker.errors.DockerException as err:
            raise InfraError(f"Docker is not answering: {err}") from err
        try:
            ensure_image(client, rt, sub)
            intake.inspect_for_run(client, sub.image_id, max_image_bytes=rt.max_image_bytes)
        except ImageRejected as err:
            return _rejected(challenge, err)
        device_ids = list(lease.device_ids) if lease is not None else []
        time_limit = team_quota.run_time_cap(session, sub.team_id, challenge.id, len(device_ids),  # type: ignore[arg-type]
                                        challenge.time_limit_s)
        if time_limit < 1:
            return state.Result(SubmissionStatus.FAILED, Outcome.QUOTA_EXCEEDED,
                                "The compute quota left is under one second.", counts_against_limit=False)
        output_dir = workdir / "output"
        tail = LiveLog(conn, client, sub.id, attempt, name, lease, session)  # type: ignore[arg-type]
        tail.start()
        try:
            run = sandbox.run(client, sandbox.spec_for(
                name=name, image_id=sub.image_id, input_dir=input_dir, output_dir=output_dir, time_limit_s=time_limit,
                memory_mb=challenge.memory_mb, cpus=challenge.cpus, device_ids=device_ids,
                log_max_bytes=LOG_CAP_BYTES, labels=labels))
        except SandboxInfraError as err:
            raise InfraError(str(err)) from err
        finally:
            tail.stop()
        if run.started_at and run.finished_at and run.finished_at < run.started_at:
            # The engine's two timestamps can disagree by microseconds on a run that did almost nothing.
            run.finished_at = run.started_at
        if run.started_at and run.finished_at:
            ledger.meter_run(session, submission_id=sub.id, lease_id=lease.id if lease is not None else None,  # type: ignore[arg-type]
                            device_class=accel_class, device_ids=device_ids, started_at=run.started_at,
                            finished_at=run.finished_at)
        base = _base_result(run)
        verdict = classify(run, time_limit, challenge.memory_mb)
        if verdict is not None:
            outcome, reason = verdict
            return state.Result(SubmissionStatus.FAILED, outcome, reason, exit_code=run.exit_code, **base)
        try:
            scores = score(client, sub, challenge, phase, truth_path, output_dir, workdir, name, labels)
        except ScoreRefused as err:
            return state.Result(SubmissionStatus.FAILED, err.outcome, err.detail, exit_code=run.exit_code, **base)
        # A check run's sample scores are shown on its page only: without a primary score no board, ranking or
        # cut could take it even if a query forgot to leave check runs out.
        primary = None if sub.kind == SubmissionKind.CHECK else scores.get(challenge.metric)
        return state.Result(SubmissionStatus.SCORED, Outcome.SCORED, "", exit_code=run.exit_code, scores=scores,
                            primary_score=primary, **base)
    except (OSError, RedisError, docker.errors.DockerException) as err:
        raise InfraError(f"{err.__class__.__name__}: {err}") from err
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def sample_inputs(archive: Path | None, workdir: Path) -> tuple[Path, Path] | None:
    """A check run's (input folder, truth file), unpacked from the public sample's zip into the run's work folder:
    the input folder holds only inputs.csv; the sample's truth stays outside it, as a test truth does."""

    if archive is None or not archive.is_file():
        return None
    input_dir, truth = workdir / "sample-input", workdir / "sample-truth" / "truth.csv"
    input_dir.mkdir(parents=True, exist_ok=True)
    truth.parent.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            # The platform wrote this zip itself (challenges.datasets): exactly these two members.
            for member, dest in (("sample/inputs.csv", input_dir / "inputs.csv"), ("sample/truth.csv", truth)):
                with zf.open(member) as src, dest.open("wb") as out:
                    shutil.copyfileobj(src, out)
    except (KeyError, zipfile.BadZipFile):
        return None
    return input_dir, truth


def _rejected(challenge: Challenge, err: Exception) -> state.Result:
    return state.Result(SubmissionStatus.FAILED, Outcome.IMAGE_REJECTED, err.args[0] if err.args else str(err),
                        counts_against_limit=challenge.image_failures_count)


def _base_result(run: Any) -> dict[str, Any]:
    started, finished = run.started_at, run.finished_at
    log_text = run.log.decode("utf-8", "replace") if isinstance(run.log, bytes) else str(run.log or "")
    return {"log_excerpt": log_text, "container_started_at": started, "container_finished_at": finished,
            "runtime_s": (finished - started).total_seconds() if started and finished else None}


def classify(run: Any, time_limit_s: float, memory_mb: int) -> tuple[str, str] | None:
    """The team's failure as (outcome, detail), or None when the container ended cleanly."""
    if getattr(run, "output_too_large", False):
        return Outcome.BAD_OUTPUT, "The output folder grew over its size limit."
    if getattr(run, "start_error", None):
        return Outcome.IMAGE_REJECTED, f"The image could not start: {run.start_error}"
    if run.timed_out:
        return Outcome.TIME_LIMIT, f"Stopped after the time limit of {time_limit_s:g} s."
    if run.oom_killed:
        return Outcome.MEMORY_LIMIT, f"Killed for using more than the memory limit of {memory_mb} MiB."
    if run.exit_code != 0:
        return Outcome.NONZERO_EXIT, f"The container exited with code {run.exit_code}."
    return None


def score(client: Any, sub: Submission, challenge: Challenge, phase: Phase, truth_path: str, output_dir: Path,
          workdir: Path, name: str, labels: dict[str, str]) -> dict[str, float]:
    """Scores of the run's output by the challenge's scorer (challenges.scoring); its containers run here."""

    def run_container(req: ScorerRun) -> Any:
        try:
            return sandbox.run(client, sandbox.spec_for(
                name=name + "-score", image_id=req.image_id, input_dir=req.input_dir, output_dir=req.output_dir,
                time_limit_s=req.time_limit_s, memory_mb=req.memory_mb, cpus=req.cpus, device_ids=[],
                log_max_bytes=LOG_CAP_BYTES, labels=labels))
        except SandboxInfraError as err:
            raise ScoringUnavailable(str(err)) from err

    ctx = ScoreContext(challenge=challenge, split=phase.split, output_dir=output_dir, truth_path=Path(truth_path),
                       workdir=workdir, run_container=run_container)
    try:
        return scorer_for(challenge).score(ctx).of(phase.split)
    except ScoringUnavailable as err:
        raise InfraError(str(err)) from err


def ensure_image(client: Any, rt: Runtime, sub: Submission) -> None:
    """Make sure the pinned image is on this node: pull it by digest from the center's registry (uploads and
    registry submissions alike), or load the kept archive of an upload made without a registry.

    The engine's layer cache is the node's cache: an image (or a layer) already there is not fetched again.
    The pulled image must carry the pinned ID (the config digest), else the run is image_rejected.
    """
    try:
        client.api.inspect_image(sub.image_id)
        return
    except docker.errors.NotFound:
        pass
    except docker.errors.DockerException as err:
        raise InfraError(f"Docker is not answering: {err}") from err
    # Rows from before image_pull existed carry a registry submission's reference in image_ref.
    pull = sub.image_pull or (sub.image_ref if sub.image_source == "registry" else "")
    if pull:
        # Allowed: the configured registry (REGISTRY_URL's host joins REGISTRY_ALLOWLIST in hub.config); a node
        # with neither configured trusts the host the platform recorded.
        image_id, _digest = intake.pull_image(client, pull, rt.registry_allowlist or (pull.split("/", 1)[0],))
    else:
        archive = image_archive_path(rt.data_dir, sub.image_id)
        if not archive.exists():
            raise InfraError(f"the image {sub.image_id[:19]} is not on node {rt.node} and its archive is gone")
        image_id = intake.load_image(client, archive, expected_id=sub.image_id)
    if image_id != sub.image_id:
        raise intake.ImageRejected("load_failed", f"the image's ID changed ({image_id} is not {sub.image_id})")


class LiveLog:
    """While the container runs: copy its output to Redis for the live tail, and stop the container if the
    submission was cancelled or its lease ended meanwhile (reads only: the lease lives while the node's beat
    lists the run, evaluator.nodes)."""

    def __init__(self, conn: Redis, client: Any, submission_id: int, attempt: int, name: str, lease: Any | None,
                 session: Session) -> None:
        self.conn, self.client, self.sid, self.attempt, self.name = conn, client, submission_id, attempt, name
        self.lease_id = lease.id if lease is not None else None
        self.database_url = runtime().database_url
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for target in (self._copy_log, self._watch):  # both poll once a second
            t = threading.Thread(target=target, daemon=True, name=f"{target.__name__}-{self.name}")
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)

    def _copy_log(self) -> None:
        last = b""
        while not self._stop.wait(1.0):
            try:
                text = sandbox.stream_log(self.client, self.name, LIVE_LOG_CAP_BYTES)
                if text and text != last:
                    queues.set_live_log(self.conn, self.sid, self.attempt, text)
                    last = text
            except Exception:  # noqa: BLE001 - the live tail is a convenience; the final log is kept anyway
                log.debug("live log of %s: one read failed", self.name, exc_info=True)

    def _watch(self) -> None:

        while not self._stop.wait(1.0):
            try:
                with session_scope(self.database_url) as session:
                    sub = session.get(Submission, self.sid)
                    if sub is None or sub.status != SubmissionStatus.RUNNING or sub.attempt != self.attempt:
                        sandbox.kill_and_remove(self.client, self.name)   # cancelled or superseded
                        return
                    if self.lease_id is not None and leases.attempt_ended(session, self.sid, self.attempt):
                        sandbox.kill_and_remove(self.client, self.name)   # the lease ended under us
                        return
            except Exception:  # noqa: BLE001
                log.debug("watch of %s failed once", self.name, exc_info=True)


# ---------------------------------------------------------------- operators' actions
def log_for_operator(session: Session, submission_id: int, actor_id: int | None) -> Submission:
    """A run's outcome and log for the operators' page, hidden inputs or not; each reading is audited."""

    sub = session.get(Submission, submission_id)
    if sub is None:
        raise NotFound(N_("No such submission."))
    challenge = session.get(Challenge, sub.challenge_id)
    record(session, actor_id, "ops.read_log", "submission", sub.id, challenge.city_id if challenge else None,
           attempt=sub.attempt)
    session.commit()
    return sub


def cancel_submission(session: Session, redis_url: str | None, submission_id: int, actor_id: int | None,
                      reason: str = "") -> Submission:
    """Cancel a queued or running submission; its container is stopped (here, or by its node's reaper)."""

    before = state.cancel(session, submission_id, reason or "Cancelled by an operator.")
    if redis_url and before.job_id:
        conn = queues.connect(redis_url)
        try:
            if before.status == SubmissionStatus.RUNNING:
                queues.stop_job(conn, before.job_id)
            else:
                queues.drop_job(conn, before.job_id)
        except RedisError:
            log.warning("could not reach Redis to stop %s; the worker stops it itself", before.job_id)
    if before.status == SubmissionStatus.RUNNING:
        try:
            sandbox.kill_and_remove(docker_client(), container_name(session, submission_id, before.attempt))
        except Exception:  # noqa: BLE001 - on another node its own watcher and reaper stop it
            log.info("container of submission %s is not on this node", submission_id)
    _audit(session, record, actor_id, "submission.cancel", submission_id, {"was": before.status})
    return state.get(session, submission_id)


def rerun_submission(session: Session, redis_url: str | None, submission_id: int, actor_id: int | None) -> Submission:
    """Run a finished submission again (same pinned image, a new attempt)."""

    sub = state.rerun(session, submission_id)
    _audit(session, record, actor_id, "submission.rerun", submission_id, {})
    if redis_url:
        try:
            dispatch.feed(session, queues.connect(redis_url))
        except RedisError:
            log.warning("Redis is not answering; the reaper dispatches submission %s later", submission_id)
    return state.get(session, sub.id)  # type: ignore[arg-type]


def _audit(session: Session, record: Any, actor_id: int | None, action: str, submission_id: int,
           detail: dict[str, Any]) -> None:
    sub = state.get(session, submission_id)
    challenge = session.get(Challenge, sub.challenge_id)
    record(session, actor_id, action, "submission", submission_id, challenge.city_id if challenge else None,
           **detail)
    session.commit()


# ---------------------------------------------------------------- the operators' overview
@dataclass
class OpsOverview:
    workers: list[dict[str, Any]]
    queues: list[dict[str, Any]]
    running: list[Submission]
    containers: list[dict[str, Any]]
    containers_error: str | None
    failures: list[Submission]
    redis_ok: bool


def ops_overview(session: Session, redis_url: str | None, failures: int = 20) -> OpsOverview:
    """Workers (live or not), each class's queue, running submissions, this host's sandbox containers and
    the latest failures, for the operators' page."""



    conn = queues.connect(redis_url) if redis_url else None
    redis_ok = conn is not None
    live: dict[str, Any] = {}
    if conn is not None:
        try:
            live = {n.name: n for n in nodes.live(conn)}
        except RedisError:
            redis_ok = False
    workers = []
    for row in session.exec(select(WorkerNode).order_by(WorkerNode.name)):
        beat = live.get(row.name)
        runs = sorted(beat.runs) if beat is not None else []
        # What the node's last beat said (the row holds what it said when it started).
        node = SimpleNamespace(name=row.name, hostname=row.hostname, started_at=row.started_at,
                               queues=beat.queues if beat else row.queues,
                               accelerators=beat.accelerators if beat else row.accelerators,
                               heartbeat_at=beat.beat_at if beat else row.heartbeat_at,
                               current_submission_id=runs[0][0] if runs else None)
        workers.append({"node": node, "live": beat is not None, "devices": len(node.accelerators or [])})
    rows = []
    for cls, gs in sorted(dispatch.groups(session).items()):
        in_redis: int | None = None
        if conn is not None:
            try:
                in_redis = queues.queued_count(conn, cls)
            except RedisError:
                redis_ok = False
        rows.append({"accel_class": cls, "waiting": sum(g.waiting for g in gs.values()),
                     "dispatched": sum(g.dispatched for g in gs.values()),
                     "running": sum(g.running for g in gs.values()), "in_redis": in_redis,
                     "workers": sum(1 for n in live.values() if cls in n.queues)})
    running = state.unfinished(session, SubmissionStatus.RUNNING)
    containers: list[dict[str, Any]] = []
    error = None
    try:
        for c in sandbox.list_hub_containers(docker_client(), {instance.LABEL: instance.of_session(session)}):
            containers.append({"name": c.name, "status": c.status, "short_id": c.short_id})
    except Exception as err:  # noqa: BLE001 - the page still shows the rest without Docker
        error = f"{err.__class__.__name__}: {err}"[:300]
    recent = list(session.exec(select(Submission).where(Submission.status == SubmissionStatus.FAILED)
                               .order_by(Submission.finished_at.desc()).limit(failures)))  # type: ignore[union-attr]
    return OpsOverview(workers, rows, running, containers, error, recent, redis_ok)
