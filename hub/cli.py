"""Flask CLI commands: create-user, init-db, seed-demo."""
from __future__ import annotations

import click
from flask import Flask, current_app

from hub import audit, demo, membership, users
from hub.db import session_scope
from hub.errors import DomainError
from hub.migrate import upgrade


def register_commands(app: Flask) -> None:
    @app.cli.command("create-user")
    @click.argument("email")
    @click.option("--role", required=True, type=click.Choice(["admin", "gov", "team", "judge", "operator"]))
    @click.option("--org", "org_code", default=None, help="Organisation code, e.g. konggang")
    @click.option("--name", default="", help="Display name")
    @click.password_option(envvar="HUB_PASSWORD")
    def create_user_cmd(email: str, role: str, org_code: str | None, name: str, password: str) -> None:
        """Create an account."""
        with session_scope(current_app.config["DATABASE_URL"]) as session:
            try:
                org_id = membership.org_by_code(session, org_code).id if org_code else None
                user = users.create_user(session, email, password, role, org_id, name)
            except DomainError as err:
                raise click.ClickException(str(err)) from err
            if org_id is not None:  # the platform admin granted an active membership
                audit.record(session, None, "membership.grant", "user", user.id, org_id=org_id, user_id=user.id)
            click.echo(f"created {user.email} ({user.role}) id={user.id}")

    @app.cli.command("set-org-admin")
    @click.argument("email")
    @click.option("--org", "org_code", required=True, help="Organisation code, e.g. qinchuang_ai")
    def set_org_admin_cmd(email: str, org_code: str) -> None:
        """Name an organisation's (first) administrator: the platform admin's step; they approve the rest."""
        with session_scope(current_app.config["DATABASE_URL"]) as session:
            try:
                row = membership.name_first_admin(session, None, org_code, email)
            except DomainError as err:
                raise click.ClickException(str(err)) from err
            click.echo(f"{email} administers {org_code} (membership id={row.id})")

    @app.cli.command("init-db")
    def init_db_cmd() -> None:
        """Create or migrate the database to the current schema."""
        upgrade(current_app.config["DATABASE_URL"])
        click.echo("database is at the current schema")

    @app.cli.command("seed-demo")
    def seed_demo_cmd() -> None:
        """Load the demo data (once)."""
        upgrade(current_app.config["DATABASE_URL"])
        with session_scope(current_app.config["DATABASE_URL"]) as session:
            loaded = demo.seed(session)
        click.echo("demo data loaded" if loaded else "demo data already present")
