"""``foundry generations``: refunds and audits."""

from __future__ import annotations

from typing import Annotated

import typer

from foundry.blobs import open_blob_store
from foundry.cli.common import console, fail, parse_uuid
from foundry.config import get_settings
from foundry.db import session_factory
from foundry.errors import FoundryError
from foundry.generation import service as generation_service

generations_app = typer.Typer(help="Customer generations.", no_args_is_help=True)


@generations_app.command("refund")
def generations_refund(generation_id: str, reason: Annotated[str, typer.Option(help="Why (kept in the ledger).")]) -> None:
    """Reverse a generation's charge and royalties with new, reversing ledger entries."""
    try:
        with session_factory(get_settings().resolved_database_url)() as session, session.begin():
            generation = generation_service.refund_generation(
                session=session, generation_id=parse_uuid(generation_id, "generation"), reason=reason)
    except FoundryError as exc:
        raise fail(f"{exc.message} [{exc.code}]") from None
    console.print(f"generation {generation.id} refunded at {generation.refunded_at.isoformat()}")


@generations_app.command("audit")
def generations_audit(generation_id: str) -> None:
    """Recompute a generation's royalty split from its recorded parameters and compare it with the ledger."""
    from worker.attribution import audit_generation

    settings = get_settings()
    store = open_blob_store(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url)
    try:
        audit = audit_generation(sessions=session_factory(settings.resolved_database_url), blob_store=store,
                                 generation_id=parse_uuid(generation_id, "generation"),
                                 cache_dir=settings.var_dir / "models")
    except FoundryError as exc:
        raise fail(f"{exc.message} [{exc.code}]") from None
    influence = [part for part in audit.recomputed if part[0] == "influence"]
    console.print(f"generation {audit.generation_id} ({audit.method}): {len(audit.posted)} royalty entries posted, "
                  f"{len(audit.recomputed)} recomputed ({len(influence)} by influence)")
    if not audit.matches:
        raise fail("the recomputed split differs from the ledger")
    console.print("recomputed split equals the ledger, to the unit")
