"""What every command group shares: the consoles, how a command fails, id parsing, progress bars."""

from __future__ import annotations

import uuid

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from foundry import rendering
from foundry.accounts.policy import Principal

console = Console()
errors = Console(stderr=True)


OPERATOR = Principal(role="admin", key_id=None, name="cli")
"""Who the command line acts as: the operator of this deployment, with the database at hand."""


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {escape(message)}")  # escaped: "[code]" is text, not markup
    return typer.Exit(code)


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
