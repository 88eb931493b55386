"""``foundry generations``: refunds, audits, the evidence behind a royalty split and disputes over it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from foundry.attribution import service as attribution_service
from foundry.blobs import open_blob_store
from foundry.cli.common import console, fail, parse_uuid
from foundry.config import get_settings
from foundry.db import session_factory
from foundry.errors import FoundryError
from foundry.generation import service as generation_service
from foundry.usecases import disputes as dispute_usecases
from foundry.usecases import evidence as evidence_usecases

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


@generations_app.command("explain")
def generations_explain(generation_id: str) -> None:
    """Each output's most influential training images with their scores, and who was paid what."""
    try:
        with session_factory(get_settings().resolved_database_url)() as session:
            evidence = evidence_usecases.generation_evidence(session=session,
                                                             generation_id=parse_uuid(generation_id, "generation"))
    except FoundryError as exc:
        raise fail(f"{exc.message} [{exc.code}]") from None
    generation = evidence.generation
    method = evidence.influence or {}
    console.print(f"generation {generation.id}: {generation.prompt!r}, pool {generation.attribution['pool']} "
                  f"{generation.currency} split by {evidence.method}"
                  + (f" (influence: {method.get('method')} v{method.get('version')}, index {method.get('index_id')})"
                     if method else ""))
    for output in evidence.outputs:
        if not output.scored:
            console.print(f"output {output.index}: not scored by influence (its share went pro rata)")
            continue
        table = Table(title=f"output {output.index}: most influential training images, then the best paid")
        numeric = ("share of influence", "evidence score", "payment score")
        for column in ("asset", "caption", "contributor", "role", *numeric):
            table.add_column(column, justify="right" if column in numeric else "left")
        for asset in output.assets:
            table.add_row(str(asset.asset_id)[:8], asset.caption[:40], asset.display_name, asset.role,
                          f"{asset.share_ppm / 10_000:.2f} %", _score(asset.score), _score(asset.payment_score))
        console.print(table)
    paid = Table(title="paid from the pool")
    for column in ("contributor", "method", "share", "amount"):
        paid.add_column(column, justify="right" if column in ("share", "amount") else "left")
    for line in evidence.paid:
        paid.add_row(line.display_name, line.method, f"{line.share_ppm / 10_000:.2f} %", str(line.amount))
    console.print(paid)


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


@generations_app.command("dispute")
def generations_dispute(generation_id: str,
                        contributor: Annotated[str, typer.Option(help="The contributor whose share is disputed.")],
                        reason: Annotated[str, typer.Option(help="Why (kept with the dispute).")],
                        opened_by: Annotated[str, typer.Option(help="Who opens it.")] = "operator") -> None:
    """Open a dispute over one contributor's share of a generation and check it by unlearning the outputs."""
    from worker.disputes import check_dispute

    settings = get_settings()
    sessions = session_factory(settings.resolved_database_url)
    store = open_blob_store(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url)
    try:
        with sessions() as session, session.begin():
            dispute = dispute_usecases.open_dispute(
                session=session, generation_id=parse_uuid(generation_id, "generation"),
                contributor_id=parse_uuid(contributor, "contributor"), reason=reason, opened_by=opened_by)
            dispute_id = dispute.id
        console.print(f"dispute {dispute_id} opened; checking it (unlearning the outputs on a copy of the model)")
        with console.status("unlearning the outputs and measuring what was forgotten with them"):
            dispute = check_dispute(sessions=sessions, blob_store=store, dispute_id=dispute_id,
                                    cache_dir=settings.var_dir / "models")
    except FoundryError as exc:
        raise fail(f"{exc.message} [{exc.code}]") from None
    result = dispute.result
    console.print(f"verdict: {dispute.verdict} -- the contributor's images rank {result['rank_among_contributors']:.2f} "
                  f"among {result['reference_contributors']} other contributors by how much the model forgot them "
                  f"with the outputs (mean loss rise {result['disputed_mean_rise']:.4g}, others' median "
                  f"{result['reference_median_rise']:.4g}); paid share {result['paid_share_ppm'] / 10_000:.2f} % of "
                  "the pool. The ledger is unchanged: a correction is a refund or a reversing entry.")


@generations_app.command("disputes")
def generations_disputes(generation_id: Annotated[str | None, typer.Argument(help="Only this generation's.")] = None) -> None:
    """Disputes and their checks, newest first."""
    with session_factory(get_settings().resolved_database_url)() as session:
        rows = attribution_service.disputes_of(
            session=session, generation_id=parse_uuid(generation_id, "generation") if generation_id else None)
    table = Table(title="attribution disputes")
    for column in ("dispute", "generation", "contributor", "status", "verdict", "rank", "opened by"):
        table.add_column(column)
    for row in rows:
        rank = (row.result or {}).get("rank_among_contributors")
        table.add_row(str(row.id)[:8], str(row.generation_id)[:8], str(row.contributor_id)[:8], row.status,
                      row.verdict or "", f"{rank:.2f}" if rank is not None else "", row.opened_by)
    console.print(table)
