"""``foundry api``, ``foundry worker`` and ``foundry demo``: the long-running processes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from foundry.cli.common import console, fail
from foundry.config import get_settings
from foundry.demo import run_demo
from foundry.errors import FoundryError
from worker.app import create_app


def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues: training, generation.")] = "training,generation",
    loglevel: str = "info",
) -> None:
    """Run a Celery worker (one job at a time) on the configured broker."""
    create_app(get_settings()).worker_main(["worker", "--queues", queues, "--pool", "solo", "--loglevel", loglevel,
                                            "--hostname", f"{queues.replace(',', '+')}@%h", "--without-mingle",
                                            "--without-gossip"])


def serve_api(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve the HTTP API with uvicorn."""
    import uvicorn

    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=workers)


def demo(
    catalog: Annotated[Path | None, typer.Option(envvar="FOUNDRY_DEMO_CATALOG",
                                                 help="The OpenMoji 17.0.0 tarball (npm pack openmoji@17.0.0).")] = None,
    train_steps: Annotated[int | None, typer.Option(
        min=1, help="Optimizer steps for the demo's base model (default: the demo preset's).")] = None,
) -> None:
    """The whole flow on the embedded default: onboard OpenMoji, snapshot it, train and register a model."""
    try:
        run_demo(get_settings(), catalog=catalog, console=console, train_steps=train_steps)
    except FoundryError as exc:
        raise fail(exc.message) from None
