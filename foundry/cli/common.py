"""What every command group shares: the consoles, how a command fails, id parsing, progress bars."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Iterator

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table
from sqlalchemy.orm import Session

from foundry import rendering
from foundry.accounts.policy import Principal
from foundry.config import get_settings
from foundry.db import session_factory
from foundry.errors import FoundryError

console = Console()
errors = Console(stderr=True)


OPERATOR = Principal(role="admin", key_id=None, name="cli")
"""Who the command line acts as: the operator of this deployment, with the database at hand."""


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {escape(message)}")  # escaped: "[code]" is text, not markup
    return typer.Exit(code)


@contextlib.contextmanager
def failing_on_domain_error(*, show_code: bool = True) -> Iterator[None]:
    """A domain error ends the command with its message (and code), not with a traceback."""
    try:
        yield
    except FoundryError as exc:
        raise fail(f"{exc.message} [{exc.code}]" if show_code else exc.message) from None


def open_session() -> Session:
    """A session on the configured database: every command reads its settings from the environment."""
    return session_factory(get_settings().resolved_database_url)()


def print_table(columns: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> None:
    """The list commands' output: one row of already formatted cells per item."""
    table = Table(*columns)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def progress_bar() -> Progress:
    return rendering.progress_bar(console)


def parse_uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise fail(f"{value!r} is not a {what} id") from None


def validation_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors())
    return str(exc)
