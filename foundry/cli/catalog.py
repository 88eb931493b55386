"""``foundry catalog`` and ``foundry blobs``: onboarding licensed catalogs."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from foundry.blobs import open_blob_store
from foundry.catalog import service as catalog_service
from foundry.cli.common import console, fail, parse_uuid
from foundry.config import get_settings
from foundry.db import session_factory
from foundry.errors import FoundryError
from foundry.rendering import counted, import_tables, summary_tables
from foundry.usecases.imports import run_import

catalog_app = typer.Typer(help="Contributors, licensed assets and onboarding.", no_args_is_help=True)
blobs_app = typer.Typer(help="The content-addressed blob store.", no_args_is_help=True)


@catalog_app.command("import")
def catalog_import(
    source: Annotated[Path, typer.Argument(help="Manifest (CSV/JSONL), OpenMoji tarball/folder, or image folder/zip.")],
    source_format: Annotated[str, typer.Option("--format", help="auto, manifest, openmoji or embedded.")] = "auto",
    images: Annotated[Path | None, typer.Option(help="Folder or zip of the manifest's images.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write the full import report as JSON here.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Import as this tenant's own brand assets.")] = None,
) -> None:
    """Onboard a licensed catalog; bad rows are rejected with a reason, the rest imported atomically."""
    settings = get_settings()
    try:
        with counted(console, f"importing {source.name}") as progress:
            batch = run_import(settings, source, source_format=source_format, images=images, requested_by="cli",
                               progress=progress, owner_tenant_id=parse_uuid(tenant, "tenant") if tenant else None)
    except FoundryError as exc:
        raise fail(f"{exc.message} [{exc.code}]; nothing was imported") from None
    for table in import_tables(batch):
        console.print(table)
    if report is not None:
        report.write_text(json.dumps({"import_id": str(batch.id), **batch.report}, indent=2, ensure_ascii=False))
        console.print(f"report written to {report}")


@catalog_app.command("summary")
def catalog_summary_command() -> None:
    """Counts of contributors, assets and grants, and the largest contributors."""
    settings = get_settings()
    with session_factory(settings.resolved_database_url)() as session:
        summary = catalog_service.catalog_summary(session=session)
    for table in summary_tables(summary):
        console.print(table)


@catalog_app.command("imports")
def catalog_imports(limit: int = 20) -> None:
    """Recent import batches and their outcome."""
    settings = get_settings()
    with session_factory(settings.resolved_database_url)() as session:
        batches = catalog_service.list_imports(session=session, limit=limit)
    table = Table("id", "started", "format", "status", "imported", "unchanged", "rejected", "source")
    for batch in batches:
        table.add_row(str(batch.id), batch.started_at.isoformat(timespec="seconds"), batch.source_format,
                      batch.status, str(batch.rows_imported), str(batch.rows_unchanged), str(batch.rows_rejected),
                      batch.source)
    console.print(table)


@catalog_app.command("report")
def catalog_report(import_id: str) -> None:
    """Print one import's full report as JSON."""
    settings = get_settings()
    try:
        parsed = uuid.UUID(import_id)
    except ValueError:
        raise fail(f"{import_id!r} is not an import id") from None
    with session_factory(settings.resolved_database_url)() as session:
        try:
            batch = catalog_service.get_import(session=session, import_id=parsed)
        except FoundryError as exc:
            raise fail(exc.message) from None
        console.print_json(json.dumps({"import_id": str(batch.id), "status": batch.status,
                                       "error": batch.error, **batch.report}, ensure_ascii=False))


@blobs_app.command("recover")
def blobs_recover() -> None:
    """Settle staging areas a crashed import left: promote committed batches, discard the rest."""
    settings = get_settings()
    store = open_blob_store(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url)
    with session_factory(settings.resolved_database_url)() as session:
        outcome = catalog_service.recover_interrupted_imports(session=session, blob_store=store)
    console.print(f"promoted {outcome['promoted']} and discarded {outcome['discarded']} staged batches")
