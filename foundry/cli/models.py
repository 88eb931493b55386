"""``foundry models``: the registry, lineage and attribution indexes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from foundry.attribution import service as attribution_service
from foundry.blobs import open_blob_store
from foundry.cli.common import (
    console,
    fail,
    failing_on_domain_error,
    open_session,
    parse_uuid,
    print_table,
    progress_bar,
)
from foundry.config import get_settings
from foundry.db import session_factory
from foundry.errors import FoundryError
from foundry.models_registry import service as registry_service

models_app = typer.Typer(help="The model registry and lineage.", no_args_is_help=True)


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
        raise fail(f"{exc.message} [{exc.code}]") from None
    console.print(f"model [bold]{model.id}[/] registered ({len(model.files)} files, licensed_only=false)")


@models_app.command("list")
def models_list(limit: int = 20) -> None:
    """Registered models with their lineage flags."""
    with open_session() as session:
        models = registry_service.list_models(session=session, limit=limit)
    print_table(("id", "name", "kind", "licensed only", "snapshot root", "weights sha256"),
                ((str(model.id), model.name, model.kind, str(model.licensed_only),
                  (model.snapshot_merkle_root or "-")[:16], model.weights_sha256[:16]) for model in models))


@models_app.command("lineage")
def models_lineage(model_id: str) -> None:
    """The chain of models and snapshots behind a model."""
    with open_session() as session:
        with failing_on_domain_error(show_code=False):
            chain = registry_service.lineage(session=session, model_id=parse_uuid(model_id, "model"))
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
    with progress_bar() as progress:
        task = progress.add_task("attribution index", total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            row = build_index_unless_current(settings, blob_store=store, model_id=parse_uuid(model_id, "model"),
                                             built_by="cli", force=force, progress=report)
        except FoundryError as exc:
            raise fail(f"{exc.message} [{exc.code}]") from None
    console.print(f"attribution index [bold]{row.id}[/] ({row.method} v{row.version}): {row.entry_count} training "
                  f"images, blob {row.blob_sha256[:16]}, built in {row.build_seconds:.1f} s")


@models_app.command("attribution")
def models_attribution(
    model_id: str,
    alpha_bps: Annotated[int | None, typer.Option(min=0, max=10_000,
                                                  help="Share of each pool paid by influence (basis points).")] = None,
) -> None:
    """Show (or set) how a model's pools are split: influence share alpha and the index in use."""
    with session_factory(get_settings().resolved_database_url)() as session, session.begin():
        try:
            model_uuid = parse_uuid(model_id, "model")
            if alpha_bps is not None:
                attribution_service.set_influence_alpha(session=session, model_id=model_uuid, alpha_bps=alpha_bps)
            model = registry_service.get_model(session=session, model_id=model_uuid)
        except FoundryError as exc:
            raise fail(exc.message) from None
        index = attribution_service.active_index(session=session, model=model)
        console.print(f"model {model.id}: alpha {model.influence_alpha_bps} bps by influence, the rest pro rata")
        console.print(f"index: {index.id} ({index.entry_count} images, built {index.created_at:%Y-%m-%d %H:%M})"
                      if index else "index: none valid for these weights and snapshot -- pro rata only "
                                    "(foundry models build-index)")
