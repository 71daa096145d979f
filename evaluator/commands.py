"""Flask CLI commands of the evaluator: `worker` (one per accelerator node), `reaper`, `registry prune`."""
from __future__ import annotations

import logging
import time

import click
from flask import Flask, current_app

from evaluator import seams
from evaluator.registry import RegistryError, RegistryRef, prune_references
from hub.db import session_scope


def register_commands(app: Flask) -> None:
    @app.cli.command("worker")
    @click.option("--queues", "queue_spec", default=None,
                  help="Accelerator classes to take work for, e.g. cpu,nvidia-a100 (default: cpu + this node's).")
    @click.option("--accelerators", default=None,
                  help="This node's devices, ACCELERATORS format (nvidia-a100:2 or GPU-uuid:class,…); "
                       "'none' for a CPU node; default: nvidia-smi, then $ACCELERATORS.")
    @click.option("--name", default=None, help="Node name (default: $HUB_NODE_NAME or the host name).")
    @click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
    @click.option("--reaper-interval", default=2.0, show_default=True, type=float,
                  help="Seconds between reaper sweeps inside this worker (0: none).")
    def worker_cmd(queue_spec: str | None, accelerators: str | None, name: str | None, burst: bool,
                   reaper_interval: float) -> None:
        """Run a worker node: evaluate submissions from the queues of its accelerator classes."""
        from evaluator.worker import run_worker

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        try:
            run_worker(dict(current_app.config), queue_spec=queue_spec, accelerators=accelerators, name=name,
                       burst=burst, reaper_interval=reaper_interval)
        except (RuntimeError, ValueError) as err:
            raise click.ClickException(str(err)) from err

    @app.cli.command("reaper")
    @click.option("--once", is_flag=True, help="One sweep, then exit.")
    @click.option("--interval", default=2.0, show_default=True, type=float, help="Seconds between sweeps.")
    @click.option("--docker/--no-docker", "use_docker", default=True,
                  help="Also remove orphaned containers of this host's Docker engine.")
    def reaper_cmd(once: bool, interval: float, use_docker: bool) -> None:
        """Re-queue lost work, release finished leases, remove orphaned containers, fail what cannot run."""
        from evaluator import jobs, queues, reaper

        url = current_app.config.get("REDIS_URL")
        if not url:
            raise click.ClickException("REDIS_URL is not set")
        conn = queues.connect(url)
        while True:
            try:
                client = jobs.docker_client() if use_docker else None
            except Exception as err:  # noqa: BLE001 - no Docker here: sweep the database and Redis only
                click.echo(f"Docker is not reachable ({err.__class__.__name__}); containers are not swept", err=True)
                client = None
            try:
                with session_scope(current_app.config["DATABASE_URL"]) as session:
                    report = reaper.sweep(session, conn, client)
                if any((report.requeued, report.failed, report.leases_released, report.containers_removed)):
                    click.echo(f"requeued={report.requeued} failed={report.failed} "
                               f"leases={report.leases_released} containers={report.containers_removed} "
                               f"dispatched={report.dispatched}")
            except Exception as err:  # noqa: BLE001 - keep sweeping: Redis may be restarting
                click.echo(f"sweep failed: {err.__class__.__name__}: {err}", err=True)
                if once:
                    raise SystemExit(1) from err
            if once:
                return
            time.sleep(interval)

    @app.cli.group("registry")
    def registry_group() -> None:
        """The center's image registry (REGISTRY_URL)."""

    @registry_group.command("prune")
    @click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
    def prune_cmd(dry_run: bool) -> None:
        """Delete the manifests of images the retention rule no longer keeps (challenges.retention).

        Their blobs go at the registry's next garbage collection (`docker-registry garbage-collect`, without
        --delete-untagged, while it is stopped or read-only; `python app.py` runs it at each start).
        """
        registry = RegistryRef.from_config(current_app.config)
        if registry is None:
            raise click.ClickException("REGISTRY_URL is not set")
        with session_scope(current_app.config["DATABASE_URL"]) as session:
            refs = seams.prunable_image_refs(session)
        try:
            pruned = prune_references(registry, refs, dry_run=dry_run)
        except RegistryError as err:
            raise click.ClickException(str(err)) from err
        for ref in pruned.deleted:
            click.echo(("would delete " if dry_run else "deleted ") + ref)
        click.echo(f"{'would delete' if dry_run else 'deleted'}={len(pruned.deleted)} "
                   f"already_gone={len(pruned.missing)} elsewhere={len(pruned.foreign)}")
