"""The ``foundry`` command line: administer the database, onboard catalogs, run the demo."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from foundry import migrate
from foundry.accounts import service as accounts_service
from foundry.accounts.policy import Principal
from foundry.blobs import open_blob_store
from foundry.catalog import service as catalog_service
from foundry.config import Settings, get_settings
from foundry.datasets import service as dataset_service
from foundry.datasets.schemas import SnapshotFilters
from foundry.db import session_factory
from foundry.errors import FoundryError
from foundry.licensing import service as licensing_service
from foundry.licensing.schemas import LicenseTermsCreate
from foundry.licensing.terms import parse_uses
from foundry.models_registry import service as registry_service
from foundry.training_jobs import service as job_service
from training import quiet_library_logs

app = typer.Typer(help="The licensed-data image foundry.", no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
catalog_app = typer.Typer(help="Contributors, licensed assets and onboarding.", no_args_is_help=True)
blobs_app = typer.Typer(help="The content-addressed blob store.", no_args_is_help=True)
dataset_app = typer.Typer(help="Immutable, hashed snapshots of licensed training data.", no_args_is_help=True)
models_app = typer.Typer(help="The model registry and lineage.", no_args_is_help=True)
train_app = typer.Typer(help="Training jobs.", no_args_is_help=True)
tenants_app = typer.Typer(help="Brand customers.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys: random, shown once, stored hashed, revocable, scoped.", no_args_is_help=True)
licenses_app = typer.Typer(help="License terms onboarding accepts, and which uses each can grant.",
                           no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(catalog_app, name="catalog")
app.add_typer(blobs_app, name="blobs")
app.add_typer(dataset_app, name="dataset")
app.add_typer(models_app, name="models")
app.add_typer(train_app, name="train")
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")
app.add_typer(licenses_app, name="licenses")


@app.callback()
def _main() -> None:
    quiet_library_logs()


provenance_app = typer.Typer(help="Content Credentials signing and verification.", no_args_is_help=True)
prices_app = typer.Typer(help="Prices per image, per model and tenant.", no_args_is_help=True)
ledger_app = typer.Typer(help="The append-only royalty ledger.", no_args_is_help=True)
generations_app = typer.Typer(help="Customer generations.", no_args_is_help=True)
payouts_app = typer.Typer(help="Payout periods and batches.", no_args_is_help=True)
app.add_typer(payouts_app, name="payouts")
app.add_typer(provenance_app, name="provenance")
app.add_typer(prices_app, name="prices")
app.add_typer(ledger_app, name="ledger")
app.add_typer(generations_app, name="generations")

console = Console()
errors = Console(stderr=True)


OPERATOR = Principal(role="admin", key_id=None, name="cli")
"""Who the command line acts as: the operator of this deployment, with the database at hand."""


def _fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {escape(message)}")  # escaped: "[code]" is text, not markup
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
                       images: Path | None = None, requested_by: str = "cli", quiet: bool = False,
                       owner_tenant_id: uuid.UUID | None = None):
    """Import one catalog with a progress bar; shared by ``catalog import`` and the demo.

    A catalog that cannot be opened raises FoundryError and, like any failed import, leaves a
    failed import record.
    """
    options = catalog_service.import_options(settings)
    blob_store = open_blob_store(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url)
    with _progress() as progress:
        task = progress.add_task(f"importing {source_path.name}", total=None)
        batch = catalog_service.import_from_location(
            session_factory=session_factory(settings.resolved_database_url),
            blob_store=blob_store, location=source_path, source_format=source_format, images=images,
            requested_by=requested_by, options=options,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
            owner_tenant_id=owner_tenant_id,
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
    warnings = batch.report.get("warnings", [])
    if warnings:
        shown = Table("row", "ref", "code", "note", title=f"warnings (first {min(20, len(warnings))})")
        for item in warnings[:20]:
            shown.add_row(str(item["row"]), str(item["ref"]), item["code"], item["message"])
        console.print(shown)


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
        batch = run_catalog_import(settings, source, source_format=source_format, images=images,
                                   owner_tenant_id=_uuid(tenant, "tenant") if tenant else None)
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
    for item in summary.top_contributors:
        top.add_row(item.display_name, str(item.assets))
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
    tenant: Annotated[str | None, typer.Option(help="For this tenant's fine-tunes (with its brand assets).")] = None,
    brand_only: Annotated[bool, typer.Option(help="With --tenant: only the tenant's brand assets.")] = False,
) -> None:
    """Freeze every asset licensed for USE right now into an immutable, Merkle-rooted snapshot."""
    snapshot = create_dataset_snapshot(
        get_settings(), name=name, use=use,
        filters=SnapshotFilters(tags=tag or [], caption_contains=caption, limit=limit,
                                tenant_id=_uuid(tenant, "tenant") if tenant else None, brand_assets_only=brand_only,
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


@tenants_app.command("create")
def tenants_create(name: str) -> None:
    """Create a brand customer."""
    try:
        with session_factory(get_settings().resolved_database_url)() as session, session.begin():
            tenant = accounts_service.create_tenant(session=session, name=name)
    except FoundryError as exc:
        raise _fail(f"{exc.message} [{exc.code}]") from None
    console.print(f"tenant [bold]{tenant.id}[/] {tenant.name}")


@tenants_app.command("list")
def tenants_list() -> None:
    """All brand customers."""
    with session_factory(get_settings().resolved_database_url)() as session:
        tenants = accounts_service.list_tenants(session=session)
    table = Table("id", "name", "created")
    for tenant in tenants:
        table.add_row(str(tenant.id), tenant.name, tenant.created_at.isoformat(timespec="seconds"))
    console.print(table)


@licenses_app.command("list")
def licenses_list() -> None:
    """Registered license terms: what a manifest's license may name, and the uses each can grant."""
    with session_factory(get_settings().resolved_database_url)() as session:
        registered = licensing_service.list_license_terms(session=session)
    table = Table("code", "name", "url", "uses it can grant", "attribution", "share-alike")
    for terms in registered:
        uses = ", ".join(use.value for use in sorted(terms.grantable_uses))
        table.add_row(terms.code, terms.name, terms.url, uses, "yes" if terms.requires_attribution else "no",
                      "yes" if terms.share_alike else "no")
    console.print(table)


@licenses_app.command("add")
def licenses_add(
    code: Annotated[str, typer.Argument(help="SPDX identifier (e.g. CC-BY-NC-4.0), or LicenseRef-<name>.")],
    name: Annotated[str, typer.Option(help="Full name of the terms.")],
    url: Annotated[str, typer.Option(help="Canonical URL of the license text.")],
    uses: Annotated[str, typer.Option(help="Uses a grant under these terms may carry: base_training, "
                                           "customer_finetune, generation (separated by ;) or all.")],
    attribution: Annotated[bool, typer.Option("--attribution/--no-attribution", help="Credit required.")] = True,
    share_alike: Annotated[bool, typer.Option("--share-alike/--no-share-alike")] = False,
) -> None:
    """Register license terms so that imports accept them (only terms that really grant AI uses)."""
    try:
        body = LicenseTermsCreate(code=code, name=name, url=url, uses=sorted(parse_uses(uses)),
                                  requires_attribution=attribution, share_alike=share_alike)
    except (ValueError, ValidationError) as exc:
        raise _fail(f"invalid license terms: {_validation_text(exc)} [invalid_license_terms]") from None
    try:
        with session_factory(get_settings().resolved_database_url)() as session, session.begin():
            terms = licensing_service.add_license_terms(session=session, terms=body, created_by="cli")
            shown = f"{terms.code} ({', '.join(use.value for use in sorted(terms.grantable_uses))})"
    except FoundryError as exc:
        raise _fail(f"{exc.message} [{exc.code}]") from None
    console.print(f"registered license terms {shown}")


def _validation_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors())
    return str(exc)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="admin, customer or artist.")],
    tenant: Annotated[str | None, typer.Option(help="Tenant id (customer keys).")] = None,
    contributor: Annotated[str | None, typer.Option(help="Contributor id (artist keys).")] = None,
    name: Annotated[str, typer.Option(help="What the key is for.")] = "",
) -> None:
    """Issue a key. It is printed once; only its hash is kept."""
    try:
        with session_factory(get_settings().resolved_database_url)() as session, session.begin():
            key, plaintext = accounts_service.create_api_key(
                session=session, role=role, name=name,
                tenant_id=_uuid(tenant, "tenant") if tenant else None,
                contributor_id=_uuid(contributor, "contributor") if contributor else None)
    except FoundryError as exc:
        raise _fail(f"{exc.message} [{exc.code}]") from None
    console.print(f"key {key.id} ({key.role}) — store it now, it will not be shown again:")
    print(plaintext)


@keys_app.command("list")
def keys_list() -> None:
    """Issued keys (never their secrets)."""
    with session_factory(get_settings().resolved_database_url)() as session:
        keys = accounts_service.list_api_keys(session=session)
    table = Table("id", "prefix", "role", "name", "tenant", "contributor", "revoked")
    for key in keys:
        table.add_row(str(key.id), key.prefix, key.role, key.name, str(key.tenant_id or "-"),
                      str(key.contributor_id or "-"), key.revoked_at.isoformat() if key.revoked_at else "-")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key at once; requests with it get 401 from now on."""
    try:
        with session_factory(get_settings().resolved_database_url)() as session, session.begin():
            key = accounts_service.revoke_api_key(session=session, key_id=_uuid(key_id, "API key"))
    except FoundryError as exc:
        raise _fail(exc.message) from None
    console.print(f"key {key.id} revoked at {key.revoked_at.isoformat()}")


@provenance_app.command("init-ca")
def provenance_init_ca(
    organization: Annotated[str, typer.Option(help="Organisation named in the certificates.")] = "Licensed Image Foundry",
    force: Annotated[bool, typer.Option(help="Replace existing signing material.")] = False,
) -> None:
    """Create the foundry's own C2PA signing CA and ES256 leaf, offline."""
    from provenance.c2pa_manifest import init_signing_ca

    folder = get_settings().resolved_signing_dir
    try:
        paths = init_signing_ca(folder, organization=organization, overwrite=force)
    except FileExistsError as exc:
        raise _fail(str(exc)) from None
    console.print(f"signing CA and leaf written to {folder} (private key {paths['signer-key.pem'].name}, mode 600)")


@provenance_app.command("verify")
def provenance_verify(image: Path) -> None:
    """Where an image came from: its Content Credentials, else its watermark, else its perceptual hash."""
    from dataclasses import asdict

    from foundry.generation.verification import verify_image
    from provenance.c2pa_manifest import ContentCredentials, SigningNotConfigured

    settings = get_settings()
    if not image.is_file():
        raise _fail(f"{image} is not a file")
    try:
        credentials = ContentCredentials(settings.resolved_signing_dir)
        with session_factory(settings.resolved_database_url)() as session:
            report = verify_image(session=session, data=image.read_bytes(), credentials=credentials,
                                  limits=catalog_service.import_options(settings).limits, viewer=OPERATOR)
    except (FoundryError, SigningNotConfigured) as exc:
        raise _fail(getattr(exc, "message", str(exc))) from None
    console.print_json(data=asdict(report))


@prices_app.command("set")
def prices_set(
    unit_price: Annotated[int, typer.Option(help="Price of one image in minor units (cents).")],
    currency: Annotated[str, typer.Option(help="ISO 4217 code.")] = "USD",
    pool_share_bps: Annotated[int, typer.Option(help="Contributor pool share of each charge, basis points.")] = 5000,
    finetune_share_bps: Annotated[int, typer.Option(help="Layered models: fine-tune licensors' part.")] = 5000,
    model: Annotated[str | None, typer.Option(help="Only for this model id.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only for this tenant id.")] = None,
) -> None:
    """Set the price for a (model, tenant) scope; the rule it replaces is retired."""
    from foundry.pricing import service as pricing_service

    try:
        with session_factory(get_settings().resolved_database_url)() as session, session.begin():
            rule = pricing_service.set_price(
                session=session, unit_price=unit_price, currency=currency, pool_share_bps=pool_share_bps,
                finetune_share_bps=finetune_share_bps, created_by="cli",
                model_id=_uuid(model, "model") if model else None,
                tenant_id=_uuid(tenant, "tenant") if tenant else None)
    except FoundryError as exc:
        raise _fail(f"{exc.message} [{exc.code}]") from None
    console.print(f"price rule {rule.id}: {rule.unit_price} {rule.currency} per image, "
                  f"pool {rule.pool_share_bps / 100:g}%")


@prices_app.command("list")
def prices_list() -> None:
    """Active price rules, most general first."""
    from foundry.pricing import service as pricing_service

    with session_factory(get_settings().resolved_database_url)() as session:
        rules = pricing_service.active_rules(session=session)
    table = Table("id", "model", "tenant", "price", "pool", "fine-tune share")
    for rule in rules:
        table.add_row(str(rule.id), str(rule.model_id or "any"), str(rule.tenant_id or "any"),
                      f"{rule.unit_price} {rule.currency}", f"{rule.pool_share_bps / 100:g}%",
                      f"{rule.finetune_share_bps / 100:g}%")
    console.print(table)


@ledger_app.command("balances")
def ledger_balances() -> None:
    """Every account's balance; each currency sums to zero."""
    from foundry.royalties import service as royalties_service

    with session_factory(get_settings().resolved_database_url)() as session:
        balances = royalties_service.trial_balance(session=session)
    table = Table("currency", "account", "balance")
    for currency, accounts in sorted(balances.items()):
        for account, amount in sorted(accounts.items()):
            table.add_row(currency, account, str(amount))
        table.add_row(currency, "[bold]sum[/]", str(sum(accounts.values())))
    console.print(table)


@generations_app.command("refund")
def generations_refund(generation_id: str, reason: Annotated[str, typer.Option(help="Why (kept in the ledger).")]) -> None:
    """Reverse a generation's charge and royalties with new, reversing ledger entries."""
    from foundry.generation import service as generation_service

    try:
        with session_factory(get_settings().resolved_database_url)() as session, session.begin():
            generation = generation_service.refund_generation(
                session=session, generation_id=_uuid(generation_id, "generation"), reason=reason)
    except FoundryError as exc:
        raise _fail(f"{exc.message} [{exc.code}]") from None
    console.print(f"generation {generation.id} refunded at {generation.refunded_at.isoformat()}")


@generations_app.command("audit")
def generations_audit(generation_id: str) -> None:
    """Recompute a generation's royalty split from its recorded parameters and compare it with the ledger."""
    from worker.attribution import audit_generation

    settings = get_settings()
    store = open_blob_store(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url)
    try:
        audit = audit_generation(sessions=session_factory(settings.resolved_database_url), blob_store=store,
                                 generation_id=_uuid(generation_id, "generation"),
                                 cache_dir=settings.var_dir / "models")
    except FoundryError as exc:
        raise _fail(f"{exc.message} [{exc.code}]") from None
    influence = [part for part in audit.recomputed if part[0] == "influence"]
    console.print(f"generation {audit.generation_id} ({audit.method}): {len(audit.posted)} royalty entries posted, "
                  f"{len(audit.recomputed)} recomputed ({len(influence)} by influence)")
    if not audit.matches:
        raise _fail("the recomputed split differs from the ledger")
    console.print("recomputed split equals the ledger, to the unit")


@payouts_app.command("close")
def payouts_close(
    period: Annotated[str, typer.Argument(help="YYYY-MM (UTC calendar month); it must have ended.")],
    threshold: Annotated[int | None, typer.Option(help="Minimum payout in minor units (default from settings).")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Also write the batch CSV here.")] = None,
) -> None:
    """Freeze a period into its payout batch (closing a closed period changes nothing)."""
    from foundry.payouts import service as payouts_service

    settings = get_settings()
    try:
        with session_factory(settings.resolved_database_url)() as session, session.begin():
            result = payouts_service.close_period(
                session=session, period=period, closed_by="cli",
                threshold=settings.payout_threshold if threshold is None else threshold)
        with session_factory(settings.resolved_database_url)() as session:
            batch = payouts_service.batch_csv(session=session, period=period)
    except FoundryError as exc:
        raise _fail(f"{exc.message} [{exc.code}]") from None
    row = result.period
    state = "closed now" if result.closed_now else "was already closed"
    console.print(f"{period} {state}: {row.contributors} contributors, payable {row.total_payable}, "
                  f"threshold {row.threshold}")
    if csv_out is not None:
        csv_out.write_text(batch)
        console.print(f"batch CSV: {csv_out}")


@payouts_app.command("report")
def payouts_report(currency: str = "USD") -> None:
    """Revenue, contributor pool and payouts per period."""
    from foundry.payouts import service as payouts_service

    with session_factory(get_settings().resolved_database_url)() as session:
        rows = payouts_service.period_report(session=session, currency=currency)
    table = Table("period", "status", "revenue", "pool", "platform", "payouts", title=f"{currency} minor units")
    for row in rows:
        table.add_row(row["period"], row["status"], str(row["revenue"]), str(row["pool"]), str(row["platform"]),
                      str(row["payouts"]))
    console.print(table)


@app.command("worker")
def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues: training, generation.")] = "training,generation",
    loglevel: str = "info",
) -> None:
    """Run a Celery worker (one job at a time) on the configured broker."""
    from worker.app import create_app

    create_app(get_settings()).worker_main(["worker", "--queues", queues, "--pool", "solo", "--loglevel", loglevel,
                            "--hostname", f"{queues.replace(',', '+')}@%h", "--without-mingle", "--without-gossip"])


def _parse_overrides(items: list[str]) -> dict:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _fail(f"--set takes KEY=VALUE, not {item!r}")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return overrides


def submit_training_job(settings: Settings, *, recipe_kind: str, snapshot_id: uuid.UUID, name: str,
                        base_model_id: uuid.UUID | None, overrides: dict, requested_by: str = "cli",
                        owner_tenant_id: uuid.UUID | None = None):
    """Validate the recipe, record the job, and return it (not yet queued)."""
    from training.recipes import recipe_for_job

    try:
        recipe = recipe_for_job(recipe_kind, overrides)
    except ValueError as exc:
        raise _fail(f"invalid recipe settings: {exc}") from None
    try:
        with session_factory(settings.resolved_database_url)() as session, session.begin():
            return job_service.create_job(session=session, name=name, recipe_kind=recipe_kind,
                                          recipe=recipe.to_dict(), snapshot_id=snapshot_id,
                                          base_model_id=base_model_id, requested_by=requested_by,
                                          owner_tenant_id=owner_tenant_id)
    except FoundryError as exc:
        raise _fail(f"{exc.message} [{exc.code}]") from None


def follow_job(settings: Settings, job_id: uuid.UUID, poll_s: float = 0.5):
    """Show a job's progress until it ends; returns the finished job row."""
    import time

    sessions = session_factory(settings.resolved_database_url)
    with _progress() as progress:
        task = progress.add_task("training", total=None)
        stage_task = None
        while True:
            with sessions() as session:
                job = job_service.get_job(session=session, job_id=job_id)
            loss = f" loss {job.loss:.4f}" if job.loss is not None else ""
            progress.update(task, completed=job.step, total=job.total_steps or None,
                            description=f"training [{job.status}]{loss}")
            if job.stage != "training" and job.stage_progress:
                if stage_task is None:
                    stage_task = progress.add_task(job.stage.replace("_", " "), total=None)
                progress.update(stage_task, completed=job.stage_progress.get("done", 0),
                                total=job.stage_progress.get("total") or None)
            if job_service.is_terminal(job):
                return job
            time.sleep(poll_s)


@train_app.command("start")
def train_start(
    snapshot: Annotated[str, typer.Option(help="Dataset snapshot id.")],
    name: Annotated[str, typer.Option(help="Name of the model it will register.")],
    recipe: Annotated[str, typer.Option(help="base, finetune or lora.")] = "base",
    base_model: Annotated[str | None, typer.Option(help="Registered model id (finetune, lora).")] = None,
    tenant: Annotated[str | None, typer.Option(
        help="Tenant id: train that tenant's private fine-tune (finetune or lora on its customer_finetune "
             "snapshot).")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps (max_train_steps).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Recipe field KEY=VALUE (repeatable).")] = None,
    wait: Annotated[bool, typer.Option(help="Follow progress until the job ends.")] = False,
    inline: Annotated[bool, typer.Option(help="Run in this process instead of on a worker.")] = False,
) -> None:
    """Queue a training job on a snapshot (or run it here with --inline)."""
    settings = get_settings()
    overrides = _parse_overrides(set_ or [])
    if steps is not None:
        overrides["max_train_steps"] = steps
    job = submit_training_job(settings, recipe_kind=recipe, snapshot_id=_uuid(snapshot, "snapshot"), name=name,
                              base_model_id=_uuid(base_model, "model") if base_model else None, overrides=overrides,
                              owner_tenant_id=_uuid(tenant, "tenant") if tenant else None)
    owner = f", for tenant {job.owner_tenant_id}" if job.owner_tenant_id else ""
    console.print(f"training job [bold]{job.id}[/] queued ({recipe}, {job.total_steps} steps{owner})")
    if inline:
        import threading

        from worker.jobs import run_job

        runner = threading.Thread(target=run_job, args=(settings, job.id), kwargs={"worker": "cli-inline"})
        runner.start()
        job = follow_job(settings, job.id)
        runner.join()
    else:
        from worker.queue import enqueue_training_job

        enqueue_training_job(job.id, settings)
        if not wait:
            return
        job = follow_job(settings, job.id)
    _report_job(job)


def _report_job(job) -> None:
    if job.status == "succeeded":
        console.print(f"job {job.id} succeeded: model [bold]{job.result_model_id}[/]")
        return
    raise _fail(f"job {job.id} {job.status}: {job.error or ''} [{job.error_code or job.status}]")


@train_app.command("status")
def train_status(job_id: str) -> None:
    """Show a training job's state, progress and log tail."""
    with session_factory(get_settings().resolved_database_url)() as session:
        try:
            job = job_service.get_job(session=session, job_id=_uuid(job_id, "training job"))
        except FoundryError as exc:
            raise _fail(exc.message) from None
    console.print(f"{job.id} [{job.status}] step {job.step}/{job.total_steps} loss {job.loss} "
                  f"{job.images_per_s or 0:.1f} img/s eta {job.eta_s or 0:.0f}s")
    console.print(job.log_tail)


@train_app.command("cancel")
def train_cancel(job_id: str) -> None:
    """Cancel a queued job, or ask a running one to stop at its next step."""
    with session_factory(get_settings().resolved_database_url)() as session, session.begin():
        try:
            job = job_service.request_cancel(session=session, job_id=_uuid(job_id, "training job"))
        except FoundryError as exc:
            raise _fail(exc.message) from None
    console.print(f"job {job.id}: {job.status}, cancel requested")


@models_app.command("register")
def models_register(
    path: Annotated[Path, typer.Argument(help="A diffusers pipeline folder (e.g. Stable Diffusion 1.5).")],
    name: Annotated[str, typer.Option(help="Registry name.")],
) -> None:
    """Register a model trained elsewhere. It is never marked licensed-only: its data is not ours."""
    settings = get_settings()
    store = open_blob_store(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url)
    try:
        with session_factory(settings.resolved_database_url)() as session, session.begin():
            model = registry_service.register_external(session=session, blob_store=store, folder=path, name=name)
    except FoundryError as exc:
        raise _fail(f"{exc.message} [{exc.code}]") from None
    console.print(f"model [bold]{model.id}[/] registered ({len(model.files)} files, licensed_only=false)")


@models_app.command("list")
def models_list(limit: int = 20) -> None:
    """Registered models with their lineage flags."""
    with session_factory(get_settings().resolved_database_url)() as session:
        models = registry_service.list_models(session=session, limit=limit)
    table = Table("id", "name", "kind", "licensed only", "snapshot root", "weights sha256")
    for model in models:
        table.add_row(str(model.id), model.name, model.kind, str(model.licensed_only),
                      (model.snapshot_merkle_root or "-")[:16], model.weights_sha256[:16])
    console.print(table)


@models_app.command("lineage")
def models_lineage(model_id: str) -> None:
    """The chain of models and snapshots behind a model."""
    with session_factory(get_settings().resolved_database_url)() as session:
        try:
            chain = registry_service.lineage(session=session, model_id=_uuid(model_id, "model"))
        except FoundryError as exc:
            raise _fail(exc.message) from None
        for depth, model in enumerate(chain):
            console.print(f"{'  ' * depth}{model.kind} {model.name} ({model.id}) licensed_only={model.licensed_only} "
                          f"snapshot={model.snapshot_id} root={model.snapshot_merkle_root} "
                          f"text encoder={model.text_encoder_origin.get('kind', '?')}")


@models_app.command("build-index")
def models_build_index(
    model_id: str,
    force: Annotated[bool, typer.Option(help="Build again even when the current index is valid.")] = False,
) -> None:
    """Build (or rebuild) a model's influence attribution index: one gradient per training image."""
    from worker.attribution import build_index_unless_current

    settings = get_settings()
    store = open_blob_store(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url)
    with _progress() as progress:
        task = progress.add_task("attribution index", total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            row = build_index_unless_current(settings, blob_store=store, model_id=_uuid(model_id, "model"),
                                             built_by="cli", force=force, progress=report)
        except FoundryError as exc:
            raise _fail(f"{exc.message} [{exc.code}]") from None
    console.print(f"attribution index [bold]{row.id}[/] ({row.method} v{row.version}): {row.entry_count} training "
                  f"images, blob {row.blob_sha256[:16]}, built in {row.build_seconds:.1f} s")


@models_app.command("attribution")
def models_attribution(
    model_id: str,
    alpha_bps: Annotated[int | None, typer.Option(min=0, max=10_000,
                                                  help="Share of each pool paid by influence (basis points).")] = None,
) -> None:
    """Show (or set) how a model's pools are split: influence share alpha and the index in use."""
    from foundry.attribution import service as attribution_service

    with session_factory(get_settings().resolved_database_url)() as session, session.begin():
        try:
            model_uuid = _uuid(model_id, "model")
            if alpha_bps is not None:
                attribution_service.set_influence_alpha(session=session, model_id=model_uuid, alpha_bps=alpha_bps)
            model = registry_service.get_model(session=session, model_id=model_uuid)
        except FoundryError as exc:
            raise _fail(exc.message) from None
        index = attribution_service.active_index(session=session, model=model)
        console.print(f"model {model.id}: alpha {model.influence_alpha_bps} bps by influence, the rest pro rata")
        console.print(f"index: {index.id} ({index.entry_count} images, built {index.created_at:%Y-%m-%d %H:%M})"
                      if index else "index: none valid for these weights and snapshot -- pro rata only "
                                    "(foundry models build-index)")


@app.command("api")
def serve_api(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve the HTTP API with uvicorn."""
    import uvicorn

    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=workers)


@app.command("demo")
def demo(
    catalog: Annotated[Path | None, typer.Option(envvar="FOUNDRY_DEMO_CATALOG",
                                                 help="The OpenMoji 17.0.0 tarball (npm pack openmoji@17.0.0).")] = None,
    train_steps: Annotated[int, typer.Option(min=1, help="Optimizer steps for the demo's base model.")] = 150,
) -> None:
    """The whole flow on the embedded default: onboard OpenMoji, snapshot it, train and register a model."""
    from foundry.demo import run_demo

    try:
        run_demo(get_settings(), catalog=catalog, console=console, train_steps=train_steps)
    except FoundryError as exc:
        raise _fail(exc.message) from None


if __name__ == "__main__":
    app()
