"""The ``foundry`` command line: administer the database, onboard catalogs, run the demo."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from foundry import migrate
from foundry.blobs import open_blob_store
from foundry.catalog import service as catalog_service
from foundry.catalog.sources import open_source
from foundry.config import Settings, get_settings
from foundry.datasets import service as dataset_service
from foundry.datasets.schemas import SnapshotFilters
from foundry.db import session_factory
from foundry.errors import FoundryError

app = typer.Typer(help="The licensed-data image foundry.", no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
catalog_app = typer.Typer(help="Contributors, licensed assets and onboarding.", no_args_is_help=True)
blobs_app = typer.Typer(help="The content-addressed blob store.", no_args_is_help=True)
dataset_app = typer.Typer(help="Immutable, hashed snapshots of licensed training data.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(catalog_app, name="catalog")
app.add_typer(blobs_app, name="blobs")
app.add_typer(dataset_app, name="dataset")

console = Console()
errors = Console(stderr=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
    )


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


def run_catalog_import(settings: Settings, source_path: Path, *, source_format: str = "auto",
                       images: Path | None = None, requested_by: str = "cli", quiet: bool = False):
    """Import one catalog with a progress bar; shared by ``catalog import`` and the demo."""
    options = catalog_service.import_options(settings)
    source = open_source(source_path, source_format=source_format, images=images, max_bytes=options.limits.max_bytes)
    blob_store = open_blob_store(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url)
    with _progress() as progress:
        task = progress.add_task(f"importing {source.format}", total=source.count())
        batch = catalog_service.run_import(
            session_factory=session_factory(settings.resolved_database_url),
            blob_store=blob_store, source=source, requested_by=requested_by, options=options,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    if not quiet:
        _print_batch(batch)
    return batch


def _print_batch(batch) -> None:
    table = Table(title=f"import {batch.id}", show_header=False)
    for label, value in (("source", batch.source), ("format", batch.source_format), ("rows", batch.rows_total),
                         ("imported", batch.rows_imported), ("unchanged (already in catalog)", batch.rows_unchanged),
                         ("rejected", batch.rows_rejected), ("new contributors", batch.contributors_created),
                         ("near-duplicates reported", batch.near_duplicates)):
        table.add_row(label, str(value))
    console.print(table)
    rejections = batch.report.get("rejections", [])
    if rejections:
        shown = Table("row", "ref", "code", "reason", title=f"rejected rows (first {min(20, len(rejections))})")
        for item in rejections[:20]:
            shown.add_row(str(item["row"]), str(item["ref"]), item["code"], item["message"])
        console.print(shown)


@catalog_app.command("import")
def catalog_import(
    source: Annotated[Path, typer.Argument(help="Manifest (CSV/JSONL), OpenMoji tarball/folder, or image folder/zip.")],
    source_format: Annotated[str, typer.Option("--format", help="auto, manifest, openmoji or embedded.")] = "auto",
    images: Annotated[Path | None, typer.Option(help="Folder or zip of the manifest's images.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write the full import report as JSON here.")] = None,
) -> None:
    """Onboard a licensed catalog; bad rows are rejected with a reason, the rest imported atomically."""
    settings = get_settings()
    try:
        batch = run_catalog_import(settings, source, source_format=source_format, images=images)
    except FoundryError as exc:
        raise _fail(f"{exc.message} [{exc.code}]; nothing was imported") from None
    if report is not None:
        report.write_text(json.dumps({"import_id": str(batch.id), **batch.report}, indent=2, ensure_ascii=False))
        console.print(f"report written to {report}")


@catalog_app.command("summary")
def catalog_summary_command() -> None:
    """Counts of contributors, assets and grants, and the largest contributors."""
    settings = get_settings()
    with session_factory(settings.resolved_database_url)() as session:
        summary = catalog_service.catalog_summary(session=session)
    print_summary(summary)


def print_summary(summary) -> None:
    table = Table(title="catalog", show_header=False)
    table.add_row("contributors", str(summary.contributors))
    table.add_row("assets", str(summary.assets))
    table.add_row("license grants", str(summary.grants))
    for use, count in summary.grants_by_use.items():
        table.add_row(f"  grants permitting {use}", str(count))
    for image_format, count in sorted(summary.assets_by_format.items()):
        table.add_row(f"  {image_format} assets", str(count))
    table.add_row("imports", str(summary.imports))
    console.print(table)
    top = Table("contributor", "assets", title="top contributors")
    for name, count in summary.top_contributors:
        top.add_row(name, str(count))
    console.print(top)


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
        raise _fail(f"{import_id!r} is not an import id") from None
    with session_factory(settings.resolved_database_url)() as session:
        try:
            batch = catalog_service.get_import(session=session, import_id=parsed)
        except FoundryError as exc:
            raise _fail(exc.message) from None
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


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise _fail(f"{value!r} is not a {what} id") from None


@dataset_app.command("snapshot")
def dataset_snapshot(
    name: Annotated[str, typer.Option(help="A name people will recognise.")],
    use: Annotated[str, typer.Option(help="base_training or customer_finetune.")] = "base_training",
    tag: Annotated[list[str] | None, typer.Option(help="Keep assets with any of these tags (repeatable).")] = None,
    contributor: Annotated[list[str] | None, typer.Option(help="Contributor id (repeatable).")] = None,
    catalog_import: Annotated[list[str] | None, typer.Option("--import", help="Import batch id (repeatable).")] = None,
    caption: Annotated[str | None, typer.Option(help="Keep assets whose caption contains this.")] = None,
    limit: Annotated[int | None, typer.Option(help="Keep the first N entries in canonical order.")] = None,
) -> None:
    """Freeze every asset licensed for USE right now into an immutable, Merkle-rooted snapshot."""
    snapshot = create_dataset_snapshot(
        get_settings(), name=name, use=use,
        filters=SnapshotFilters(tags=tag or [], caption_contains=caption, limit=limit,
                                contributor_ids=[_uuid(c, "contributor") for c in contributor or []],
                                import_ids=[_uuid(i, "import") for i in catalog_import or []]))
    console.print(f"snapshot [bold]{snapshot.id}[/]: {snapshot.entry_count} assets from "
                  f"{snapshot.contributor_count} contributors, Merkle root {snapshot.merkle_root}")


def create_dataset_snapshot(settings: Settings, *, name: str, use: str, filters: SnapshotFilters,
                            created_by: str = "cli"):
    try:
        with session_factory(settings.resolved_database_url)() as session, session.begin():
            return dataset_service.create_snapshot(session=session, name=name, use=use, filters=filters,
                                                   created_by=created_by)
    except FoundryError as exc:
        raise _fail(f"{exc.message} [{exc.code}]") from None


@dataset_app.command("list")
def dataset_list(limit: int = 20) -> None:
    """Recent snapshots."""
    with session_factory(get_settings().resolved_database_url)() as session:
        snapshots = dataset_service.list_snapshots(session=session, limit=limit)
    table = Table("id", "created", "name", "use", "entries", "contributors", "merkle root")
    for item in snapshots:
        table.add_row(str(item.id), item.created_at.isoformat(timespec="seconds"), item.name, item.use,
                      str(item.entry_count), str(item.contributor_count), item.merkle_root[:16] + "…")
    console.print(table)


@dataset_app.command("gate")
def dataset_gate(snapshot_id: str) -> None:
    """Re-run the license gate: exit 0 when every entry may still be used, else name the assets."""
    parsed = _uuid(snapshot_id, "snapshot")
    with session_factory(get_settings().resolved_database_url)() as session:
        try:
            result = dataset_service.enforce_license_gate(session=session, snapshot_id=parsed)
        except FoundryError as exc:
            for violation in exc.details.get("violations", []):
                errors.print(f"  {violation['asset_id']}: {violation['reason']}")
            raise _fail(f"{exc.message} [{exc.code}]") from None
    console.print(f"snapshot {result.snapshot_id}: all {result.entries} entries may be used "
                  f"(Merkle root {result.merkle_root} verified)")


@app.command("api")
def serve_api(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve the HTTP API with uvicorn."""
    import uvicorn

    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=workers)


@app.command("demo")
def demo(
    catalog: Annotated[Path | None, typer.Option(envvar="FOUNDRY_DEMO_CATALOG",
                                                 help="The OpenMoji 17.0.0 tarball (npm pack openmoji@17.0.0).")] = None,
) -> None:
    """The whole flow on the embedded default: migrate, onboard OpenMoji, summarise the catalog."""
    from foundry.demo import run_demo

    try:
        run_demo(get_settings(), catalog=catalog, console=console)
    except FoundryError as exc:
        raise _fail(exc.message) from None


if __name__ == "__main__":
    app()
