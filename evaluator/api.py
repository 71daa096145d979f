"""The evaluator's door: what the packages beside it may ask of it (docs/ARCHITECTURE.md §1).

`challenges` imports from the evaluator only this module and `evaluator.contract`. Everything here takes plain
values and returns contract types or plain values, never the evaluator's own rows.
"""
from __future__ import annotations

from redis.exceptions import RedisError
from sqlmodel import Session

from evaluator import dispatch, queues
from evaluator.contract import RunStatus

_STATES = {"queued": "waiting", "running": "running"}


def run_status(session: Session, submission_id: int, redis_url: str | None) -> RunStatus:
    """Where the run of a submission stands: its state, queue position, live workers (their beats are in Redis)
    and estimated wait."""
    info = dispatch.queue_position(session, submission_id, queues.connect(redis_url) if redis_url else None)
    return RunStatus(state=_STATES.get(info.status, "delivered"), position=info.position,  # type: ignore[arg-type]
                     workers=info.workers, est_wait_s=info.est_wait_s)


def live_log(redis_url: str | None, submission_id: int, attempt: int) -> str:
    """The log of a running attempt so far (the live tail), or "" when Redis does not have it."""
    if not redis_url:
        return ""
    try:
        return queues.read_live_log(queues.connect(redis_url), submission_id, attempt).decode("utf-8", "replace")
    except RedisError:
        return ""
