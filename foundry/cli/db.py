"""``foundry db``: the database schema."""

from __future__ import annotations

import typer

from foundry import migrate
from foundry.cli.common import console
from foundry.config import get_settings

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Bring the database schema up to ``revision`` (default: the newest)."""
    settings = get_settings()
    migrate.upgrade(settings.resolved_database_url, revision)
    console.print(f"database at revision [bold]{migrate.current_revision(settings.resolved_database_url)}[/]")


@db_app.command("downgrade")
def db_downgrade(revision: str) -> None:
    """Take the schema back to ``revision`` (``base`` drops everything)."""
    settings = get_settings()
    migrate.downgrade(settings.resolved_database_url, revision)
    console.print(f"database at revision {migrate.current_revision(settings.resolved_database_url)}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database and the newest one available."""
    url = get_settings().resolved_database_url
    console.print(f"current: {migrate.current_revision(url)}  head: {migrate.head_revision(url)}")
