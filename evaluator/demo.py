"""Demo: build (offline, FROM scratch with busybox) a baseline image for each demo challenge and submit it,
so that a newcomer sees a real evaluation happen as soon as the worker starts."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from challenges.models import ChallengeStatus, Team, TeamMember
from hub.errors import DomainError
from hub.models import Organisation, User


def _docker() -> Any | None:
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
        return client
    except Exception as err:  # noqa: BLE001 - any way the engine is out of reach
        print(f"  note: Docker is not reachable ({err.__class__.__name__}); the demo baselines are not built. "
              "Start Docker and run `flask --app app seed-demo` on a fresh database to see a real evaluation.")
        return None


def _submitter(session: Session, challenge_id: int) -> User | None:
    """The captain of the first approved team of the challenge."""
    team = session.exec(select(Team).where(Team.challenge_id == challenge_id, Team.status == "approved")
                        .order_by(Team.id)).first()
    if team is None:
        return None
    member = session.exec(select(TeamMember).where(TeamMember.team_id == team.id, TeamMember.status == "active")
                          .order_by(TeamMember.id)).first()
    return session.get(User, member.user_id) if member else None


def seed(session: Session, orgs: dict[str, Organisation], accounts: dict[str, User]) -> None:
    from challenges.demo import BASELINES
    from evaluator import images, seams, submit

    if not BASELINES:
        return
    client = _docker()
    if client is None:
        return
    redis_url = os.environ.get("REDIS_URL")
    with tempfile.TemporaryDirectory(prefix="hub-demo-") as tmp:
        for slug, script in BASELINES.items():
            try:
                challenge = seams.challenge_by_slug(session, slug)
                if challenge.status != ChallengeStatus.OPEN:
                    # e.g. the awarded demo challenge: its board already shows the whole finished flow.
                    print(f"  demo: {slug} is {challenge.status}, so it takes no new run; its board shows its results")
                    continue
                user = _submitter(session, challenge.id)  # type: ignore[arg-type]
                if user is None:
                    print(f"  note: demo challenge {slug} has no approved team; no baseline submitted")
                    continue
                image_id = images.build_busybox_image(client, script, workdir=Path(tmp))
                # A tag keeps `docker image prune` from removing the demo image.
                client.api.tag(image_id, f"hub-demo/{slug}", tag="baseline")
                sub = submit.submit_image_id(session, slug=slug, user=user, image_id=image_id,
                                             image_ref=f"hub-demo/{slug}:baseline", redis_url=redis_url)
                print(f"  demo: baseline image for {slug} submitted as submission {sub.id}")
            except DomainError as err:
                print(f"  note: the baseline of {slug} was not submitted: {err}")
            except Exception as err:  # noqa: BLE001 - the demo must never stop the platform from starting
                print(f"  note: the baseline of {slug} could not be built: {err.__class__.__name__}: {err}")
