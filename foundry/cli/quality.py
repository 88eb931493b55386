"""``foundry quality`` and the measuring commands of ``foundry models``: image quality, measured.

Training the evaluator and measuring a model take torch, so they run the worker's functions in
this process with a progress bar, like ``models build-index``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from foundry.blobs import open_blob_store
from foundry.cli.common import console, fail, parse_uuid
from foundry.config import get_settings
from foundry.db import session_factory
from foundry.errors import FoundryError
from foundry.models_registry import service as registry_service
from foundry.quality import service as quality_service
from foundry.quality.policy import summary_line
from foundry.rendering import counted


def _blob_store(settings):
    return open_blob_store(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url)


@contextlib.contextmanager
def _failing_readably() -> Iterator[None]:
    """A domain error ends the command with its message and code, not a traceback."""
    try:
        yield
    except FoundryError as exc:
        raise fail(f"{exc.message} [{exc.code}]") from None


quality_app = typer.Typer(help="Measured image quality: the frozen evaluator of the held-out split.",
                          no_args_is_help=True)


@quality_app.command("train-evaluator")
def quality_train_evaluator(
    epochs: Annotated[int, typer.Option(min=1, max=1000, help="Passes over the training renditions.")] = 12,
    retrain: Annotated[bool, typer.Option(help="Train one here even where the evaluator committed with the code "
                                               "for this split's content and settings exists.")] = False,
) -> None:
    """Train the split's evaluator on licensed renditions outside the held-out split (or take the one committed
    for the same content and settings), freeze and record it."""
    from training.quality import FROZEN_EVALUATORS, EvaluatorConfig
    from worker.quality import train_split_evaluator

    settings = get_settings()
    with counted(console, "evaluator training steps") as progress, _failing_readably():
        record = train_split_evaluator(sessions=session_factory(settings.resolved_database_url),
                                       blob_store=_blob_store(settings), created_by="cli",
                                       config=EvaluatorConfig(epochs=epochs), progress=progress,
                                       frozen=None if retrain else FROZEN_EVALUATORS)
    console.print(f"evaluator [bold]{record.id}[/] sha256 {record.sha256[:16]}: {len(record.groups)} groups, "
                  f"real held-out balanced accuracy {record.real_balanced_accuracy:.3f} "
                  f"(subgroups {record.real_subgroup_balanced_accuracy:.3f})")


def models_measure(
    model_id: str,
    per_group: Annotated[int | None, typer.Option(min=1, help="Held-out prompts per group (default: all).")] = None,
    steps: Annotated[int, typer.Option(min=1, max=1000, help="Sampling steps of the measured images.")] = 25,
    guidance: Annotated[float | None, typer.Option(min=0.0, max=50.0, help="Classifier-free guidance (default: "
                                                                            "the model's serving guidance).")] = None,
    sheet: Annotated[Path | None, typer.Option(help="Also write the contact sheet PNG here.")] = None,
) -> None:
    """Measure a model on the held-out prompts with the current evaluator and record the result."""
    from training.quality import SamplingSettings
    from worker.quality import measure_model

    settings = get_settings()
    store = _blob_store(settings)
    with counted(console, "generated images") as progress, _failing_readably():
        measured = measure_model(
            sessions=session_factory(settings.resolved_database_url), blob_store=store,
            model_id=parse_uuid(model_id, "model"), cache_dir=settings.var_dir, measured_by="cli",
            sampling=SamplingSettings(num_inference_steps=steps, guidance_scale=guidance), per_group=per_group,
            progress=progress)
    if sheet is not None and measured.sheet_sha256:
        sheet.write_bytes(store.get(measured.sheet_sha256))
    console.print(f"measurement [bold]{measured.id}[/]: {summary_line(measured.metrics)}")


def models_show(model_id: str) -> None:
    """One model: what made it, and how well it draws (its newest quality measurement)."""
    with session_factory(get_settings().resolved_database_url)() as session:
        try:
            model = registry_service.get_model(session=session, model_id=parse_uuid(model_id, "model"))
        except FoundryError as exc:
            raise fail(f"{exc.message} [{exc.code}]") from None
        measurement = quality_service.latest_measurement(session=session, model_id=model.id)
    table = Table("field", "value", show_header=False)
    for field, value in (("id", model.id), ("name", model.name), ("kind", model.kind),
                         ("licensed only", model.licensed_only), ("snapshot", model.snapshot_id),
                         ("snapshot root", model.snapshot_merkle_root), ("weights sha256", model.weights_sha256),
                         ("text encoder", model.text_encoder_origin.get("kind", "?")),
                         ("created", model.created_at.isoformat(timespec="seconds"))):
        table.add_row(field, str(value))
    if measurement is None:
        table.add_row("quality", "not measured (foundry models measure)")
    else:
        table.add_row("quality", summary_line(measurement.metrics))
        table.add_row("evaluator sha256", measurement.evaluator_sha256)
        table.add_row("contact sheet", measurement.sheet_sha256 or "-")
    console.print(table)
