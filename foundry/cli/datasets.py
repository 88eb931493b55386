"""``foundry dataset``: licensed snapshots."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from foundry.cli.common import console, errors, fail, parse_uuid
from foundry.config import Settings, get_settings
from foundry.datasets import service as dataset_service
from foundry.datasets.schemas import SnapshotFilters
from foundry.db import session_factory
from foundry.errors import FoundryError

dataset_app = typer.Typer(help="Immutable, hashed snapshots of licensed training data.", no_args_is_help=True)


@dataset_app.command("snapshot")
def dataset_snapshot(
    name: Annotated[str, typer.Option(help="A name people will recognise.")],
    use: Annotated[str, typer.Option(help="base_training or customer_finetune.")] = "base_training",
    tag: Annotated[list[str] | None, typer.Option(help="Keep assets with any of these tags (repeatable).")] = None,
    contributor: Annotated[list[str] | None, typer.Option(help="Contributor id (repeatable).")] = None,
    catalog_import: Annotated[list[str] | None, typer.Option("--import", help="Import batch id (repeatable).")] = None,
    caption: Annotated[str | None, typer.Option(help="Keep assets whose caption contains this.")] = None,
    limit: Annotated[int | None, typer.Option(help="Keep the first N entries in canonical order.")] = None,
    tenant: Annotated[str | None, typer.Option(help="For this tenant's fine-tunes (with its brand assets).")] = None,
    brand_only: Annotated[bool, typer.Option(help="With --tenant: only the tenant's brand assets.")] = False,
) -> None:
    """Freeze every asset licensed for USE right now into an immutable, Merkle-rooted snapshot."""
    snapshot = create_dataset_snapshot(
        get_settings(), name=name, use=use,
        filters=SnapshotFilters(tags=tag or [], caption_contains=caption, limit=limit,
                                tenant_id=parse_uuid(tenant, "tenant") if tenant else None, brand_assets_only=brand_only,
                                contributor_ids=[parse_uuid(c, "contributor") for c in contributor or []],
                                import_ids=[parse_uuid(i, "import") for i in catalog_import or []]))
    console.print(f"snapshot [bold]{snapshot.id}[/]: {snapshot.entry_count} assets from "
                  f"{snapshot.contributor_count} contributors, Merkle root {snapshot.merkle_root}")


def create_dataset_snapshot(settings: Settings, *, name: str, use: str, filters: SnapshotFilters,
                            created_by: str = "cli"):
    try:
        with session_factory(settings.resolved_database_url)() as session, session.begin():
            return dataset_service.create_snapshot(session=session, name=name, use=use, filters=filters,
                                                   created_by=created_by)
    except FoundryError as exc:
        raise fail(f"{exc.message} [{exc.code}]") from None


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
    parsed = parse_uuid(snapshot_id, "snapshot")
    with session_factory(get_settings().resolved_database_url)() as session:
        try:
            result = dataset_service.enforce_license_gate(session=session, snapshot_id=parsed)
        except FoundryError as exc:
            for violation in exc.details.get("violations", []):
                errors.print(f"  {violation['asset_id']}: {violation['reason']}")
            raise fail(f"{exc.message} [{exc.code}]") from None
    console.print(f"snapshot {result.snapshot_id}: all {result.entries} entries may be used "
                  f"(Merkle root {result.merkle_root} verified)")
