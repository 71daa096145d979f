"""The reaper on an engine that two platform instances share: it removes only its own instance's orphans."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evaluator import instance, jobs, reaper, sandbox, state, submit
from tests.evaluator.pipeline import fresh
from tests.factories import make_eval_setup

SLEEPER = "#!/bin/sh\nsleep 300\n"


def test_instances_have_their_own_container_names(db_url, monkeypatch):
    monkeypatch.delenv(instance.ENV, raising=False)
    ours = instance.instance_id(db_url)
    theirs = instance.instance_id("postgresql://hub:secret@db.other:5432/hub")
    assert ours != theirs and ours == instance.instance_id(db_url)        # stable per database
    # The password never shows in a container name, nor makes a second instance of the same database.
    assert theirs == instance.instance_id("postgresql://hub:rotated@db.other:5432/hub")
    assert state.container_name_for(1, 1, instance=ours) != state.container_name_for(1, 1, instance=theirs)
    name = state.container_name_for(12, 3, instance=ours)
    assert state.parse_container_name(name) == (ours, 12, 3)
    assert state.parse_container_name(name + "-score") == (ours, 12, 3)
    assert state.parse_container_name("hub-sub-12-a3") is None             # not a pipeline name
    monkeypatch.setenv(instance.ENV, "prod1")
    assert instance.instance_id(db_url) == "prod1"
    monkeypatch.setenv(instance.ENV, "Prod 1")
    with pytest.raises(ValueError):
        instance.instance_id(db_url)


def _container(client: Any, image: str, tmp_path: Path, name: str, labels: dict[str, str]) -> str:
    spec = sandbox.spec_for(name=name, image_id=image, input_dir=None, output_dir=tmp_path / name,
                              time_limit_s=300, memory_mb=32, cpus=0.1, device_ids=[], log_max_bytes=4096,
                              labels=labels)
    container = sandbox.create(client, spec)
    container.start()
    return name


def _alive(client: Any, name: str) -> bool:
    return any(c.name == name for c in client.containers.list(filters={"name": name}))


@pytest.mark.docker
def test_reaper_removes_its_own_orphans_and_never_another_instances_containers(session, tmp_path, docker_client,
                                                                               busybox_image, monkeypatch):
    monkeypatch.delenv(instance.ENV, raising=False)
    image = busybox_image(SLEEPER)
    setup = make_eval_setup(session, tmp_path)
    def submission() -> int:
        sub = submit.submit_image_id(session, slug=setup.challenge.slug, user=setup.users[0], image_id=image,
                                     image_ref="m", redis_url=None)
        return sub.id  # type: ignore[return-value]

    live, over = submission(), submission()
    for sid in (live, over):
        state.mark_dispatched(session, sid, 0, "eval-cpu")
        assert state.claim(session, sid, 1, "node-x")
    state.finish(session, over, 1, state.Result("failed", "nonzero_exit", "exit 1", exit_code=1))

    ours = instance.of_session(session)
    other = "otherhub01"            # another platform on the same engine: its submission ids overlap ours
    names = {
        "our live run": _container(docker_client, image, tmp_path, jobs.container_name(session, live, 1),
                                   jobs.container_labels(session, "node-x", live, 1)),
        "our orphan": _container(docker_client, image, tmp_path, jobs.container_name(session, over, 1),
                                 jobs.container_labels(session, "node-x", over, 1)),
        "their run, same ids as our orphan": _container(
            docker_client, image, tmp_path, state.container_name_for(over, 1, instance=other),
            {instance.LABEL: other, instance.NODE_LABEL: "their-node", "hub.submission": str(over),
             "hub.attempt": "1"}),
    }
    try:
        assert ours in names["our live run"] and other in names["their run, same ids as our orphan"]
        report = reaper.SweepReport()
        reaper.remove_orphan_containers(session, docker_client, report)

        assert report.containers_removed == [names["our orphan"]]
        assert not _alive(docker_client, names["our orphan"])
        assert _alive(docker_client, names["our live run"])
        assert _alive(docker_client, names["their run, same ids as our orphan"])
        assert fresh(session, live).status == "running"
        attrs = docker_client.api.inspect_container(names["our live run"])
        assert attrs["Config"]["Labels"][instance.LABEL] == ours
        assert attrs["Config"]["Labels"][instance.NODE_LABEL] == "node-x"
    finally:
        for name in names.values():
            sandbox.kill_and_remove(docker_client, name, quiet=True)
