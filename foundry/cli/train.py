"""``foundry train``: training jobs."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from foundry.cli.common import console, fail, failing_on_domain_error, open_session, parse_uuid, print_table
from foundry.config import get_settings
from foundry.db import session_factory
from foundry.errors import FoundryError
from foundry.rendering import job_progress
from foundry.training_jobs import service as job_service
from foundry.usecases.training import submit_training_job, wait_for_job
from recipes import PRESETS, RECIPE_KINDS
from worker.queue import CeleryQueue

train_app = typer.Typer(help="Training jobs.", no_args_is_help=True)


def _parse_overrides(items: list[str]) -> dict:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"--set takes KEY=VALUE, not {item!r}")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return overrides


@train_app.command("start")
def train_start(
    snapshot: Annotated[str, typer.Option(help="Dataset snapshot id.")],
    name: Annotated[str, typer.Option(help="Name of the model it will register.")],
    recipe: Annotated[str, typer.Option(help=f"{', '.join(RECIPE_KINDS)} (an upscaler follows a base model).")] = "base",
    base_model: Annotated[str | None, typer.Option(
        help="Registered model id (finetune, lora; upscaler: the base model it enlarges).")] = None,
    tenant: Annotated[str | None, typer.Option(
        help="Tenant id: train that tenant's private fine-tune (finetune or lora on its customer_finetune "
             "snapshot).")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps (max_train_steps).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Recipe field KEY=VALUE (repeatable).")] = None,
    preset: Annotated[str | None, typer.Option(
        help=f"A named base-recipe preset ({', '.join(sorted(PRESETS))}); --steps and --set adjust it.")] = None,
    wait: Annotated[bool, typer.Option(help="Follow progress until the job ends.")] = False,
    inline: Annotated[bool, typer.Option(help="Run in this process instead of on a worker.")] = False,
) -> None:
    """Queue a training job on a snapshot (or run it here with --inline)."""
    settings = get_settings()
    overrides = _parse_overrides(set_ or [])
    if steps is not None:
        overrides["max_train_steps"] = steps
    try:
        with session_factory(settings.resolved_database_url)() as session:
            job = submit_training_job(
                session=session, queue=None if inline else CeleryQueue(settings), recipe_kind=recipe,
                snapshot_id=parse_uuid(snapshot, "snapshot"), name=name,
                base_model_id=parse_uuid(base_model, "model") if base_model else None, overrides=overrides,
                preset=preset, requested_by="cli", owner_tenant_id=parse_uuid(tenant, "tenant") if tenant else None,
                style_mode=settings.style_names)
    except FoundryError as exc:
        raise fail(f"{exc.message} [{exc.code}]") from None
    owner = f", for tenant {job.owner_tenant_id}" if job.owner_tenant_id else ""
    console.print(f"training job [bold]{job.id}[/] queued ({recipe}, {job.total_steps} steps{owner})")
    if inline:
        from worker.jobs import run_in_thread  # torch and diffusers load only when training here

        with job_progress(console) as show:
            job = run_in_thread(settings, job.id, worker="cli-inline", on_progress=show)
    elif wait:
        with job_progress(console) as show:
            job = wait_for_job(settings, job.id, on_progress=show)
    else:
        return
    _report_job(job)


def _report_job(job) -> None:
    if job.status == "succeeded":
        console.print(f"job {job.id} succeeded: model [bold]{job.result_model_id}[/]")
        return
    raise fail(f"job {job.id} {job.status}: {job.error or ''} [{job.error_code or job.status}]")


@train_app.command("list")
def train_list(
    status: Annotated[str | None, typer.Option(help="Only jobs in this state: queued, running, succeeded, "
                                                    "failed or cancelled.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's jobs (tenant id).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
) -> None:
    """Training jobs, newest first, with their state and progress."""
    tenant_id = parse_uuid(tenant, "tenant") if tenant else None
    with open_session() as session, failing_on_domain_error(show_code=False):
        jobs = job_service.list_jobs(session=session, status=status, tenant_id=tenant_id, limit=limit)
    print_table(("id", "name", "recipe", "status", "stage", "step", "created"),
                ((str(job.id), job.name, job.recipe_kind, job.status, job.stage, f"{job.step}/{job.total_steps}",
                  f"{job.created_at:%Y-%m-%d %H:%M}") for job in jobs))


@train_app.command("status")
def train_status(job_id: str) -> None:
    """Show a training job's state, progress and log tail."""
    with open_session() as session, failing_on_domain_error(show_code=False):
        job = job_service.get_job(session=session, job_id=parse_uuid(job_id, "training job"))
    console.print(f"{job.id} [{job.status}] step {job.step}/{job.total_steps} loss {job.loss} "
                  f"{job.images_per_s or 0:.1f} img/s eta {job.eta_s or 0:.0f}s")
    console.print(job.log_tail)


@train_app.command("cancel")
def train_cancel(job_id: str) -> None:
    """Cancel a queued job, or ask a running one to stop at its next step."""
    with open_session() as session, session.begin(), failing_on_domain_error(show_code=False):
        job = job_service.request_cancel(session=session, job_id=parse_uuid(job_id, "training job"))
    console.print(f"job {job.id}: {job.status}, cancel requested")
