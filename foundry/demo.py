"""``foundry demo``: the whole flow on the embedded default, from an empty folder.

Migrate, onboard the OpenMoji catalog, freeze a licensed snapshot of it, train the licensed-only
base model on that snapshot (in this process, no broker needed), register it and save a sample
grid. Later stages (generation, statements) extend this same script.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from rich.console import Console

from foundry import migrate
from foundry.blobs import open_blob_store
from foundry.catalog import service as catalog_service
from foundry.config import Settings
from foundry.datasets.schemas import SnapshotFilters
from foundry.models_registry import service as registry_service
from foundry.training_jobs import service as job_service
from foundry.db import session_factory
from foundry.errors import FoundryError

OPENMOJI_PACKAGE = "openmoji@17.0.0"
OPENMOJI_SHA256 = "55ee7d13485dec86e9f38c1f3a645a13382d33ff97c0cd845ee824b0aef45e68"
_SHARED_COPY = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "openmoji-17.0.0.tgz"
HOW_TO_PROVIDE = (
    "the demo needs the OpenMoji 17.0.0 package. Provide it with --catalog PATH or FOUNDRY_DEMO_CATALOG=PATH "
    f"(the file `npm pack {OPENMOJI_PACKAGE}` downloads), or install npm so the demo can fetch it itself."
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def locate_catalog(settings: Settings, catalog: Path | None, console: Console) -> Path:
    """The tarball to onboard: the one given, a checkout's shared copy, a cached or a fresh ``npm pack``."""
    if catalog is not None:
        if not catalog.exists():
            raise FoundryError(f"{catalog} does not exist; {HOW_TO_PROVIDE}", code="demo_catalog_missing")
        return catalog
    if _SHARED_COPY.is_file():
        return _SHARED_COPY
    cache = settings.var_dir / "cache"
    cached = cache / "openmoji-17.0.0.tgz"
    if cached.is_file() and _sha256(cached) == OPENMOJI_SHA256:
        return cached
    npm = shutil.which("npm")
    if npm is None:
        raise FoundryError(HOW_TO_PROVIDE, code="demo_catalog_missing")
    cache.mkdir(parents=True, exist_ok=True)
    console.print(f"fetching {OPENMOJI_PACKAGE} with npm pack …")
    result = subprocess.run([npm, "pack", OPENMOJI_PACKAGE, "--pack-destination", str(cache)],
                            capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0 or not cached.is_file():
        raise FoundryError(f"npm pack failed ({result.stderr.strip()[-300:]}); {HOW_TO_PROVIDE}",
                           code="demo_catalog_missing")
    if _sha256(cached) != OPENMOJI_SHA256:
        cached.unlink()
        raise FoundryError("the downloaded OpenMoji package does not match its known sha256", code="demo_catalog_corrupt")
    return cached


def run_demo(settings: Settings, *, catalog: Path | None, console: Console, train_steps: int = 150) -> None:
    from foundry.cli import create_dataset_snapshot, print_summary, run_catalog_import

    url = settings.resolved_database_url
    console.rule("1. database")
    migrate.upgrade(url)
    console.print(f"schema at revision {migrate.current_revision(url)} ({url})")

    console.rule("2. onboard the licensed catalog")
    source = locate_catalog(settings, catalog, console)
    console.print(f"catalog: {source}")
    run_catalog_import(settings, source, source_format="openmoji", requested_by="demo")

    console.rule("3. catalog summary")
    with session_factory(url)() as session:
        print_summary(catalog_service.catalog_summary(session=session))

    console.rule("4. licensed snapshot")
    snapshot = create_dataset_snapshot(settings, name="openmoji-base", use="base_training",
                                       filters=SnapshotFilters(), created_by="demo")
    console.print(f"snapshot {snapshot.id}: {snapshot.entry_count} assets licensed for base training from "
                  f"{snapshot.contributor_count} contributors\nMerkle root {snapshot.merkle_root}")

    console.rule(f"5. train the licensed-only base model ({train_steps} steps)")
    model_id = train_demo_model(settings, snapshot.id, train_steps, console)

    console.rule("6. the model and its lineage")
    with session_factory(url)() as session:
        model = registry_service.get_model(session=session, model_id=model_id)
        job = job_service.get_job(session=session, job_id=model.training_job_id)
    console.print(f"model {model.id} ({model.kind}), licensed_only={model.licensed_only}\n"
                  f"  snapshot {model.snapshot_id} root {model.snapshot_merkle_root}\n"
                  f"  weights sha256 {model.weights_sha256}\n  text encoder: {model.text_encoder_origin.get('kind')}\n"
                  f"  final loss {model.metrics.get('final_loss'):.4f} after {model.metrics.get('steps')} steps")
    store = open_blob_store(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url)
    grids = [a for a in job.artifacts if a["kind"] == "sample_grid"]
    if grids:
        target = settings.var_dir / "demo" / "sample_grid.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.get(grids[-1]["sha256"]))
        console.print(f"sample grid: {target}")


def train_demo_model(settings: Settings, snapshot_id, train_steps: int, console: Console):
    """Run one base-training job in this process, with the same runner a worker uses."""
    import threading

    from foundry.cli import follow_job, submit_training_job
    from training.jobs import run_job

    prompts = ["grinning face", "red heart", "cat face", "sun with face"]
    job = submit_training_job(settings, recipe_kind="base", snapshot_id=snapshot_id, name="openmoji-base",
                              base_model_id=None, requested_by="demo",
                              overrides={"max_train_steps": train_steps, "checkpoint_every": max(10, train_steps // 3),
                                         "validation_every": 0, "validation_prompts": prompts})
    runner = threading.Thread(target=run_job, args=(settings, job.id), kwargs={"worker": "demo"}, daemon=True)
    runner.start()
    job = follow_job(settings, job.id)
    runner.join()
    if job.status != "succeeded":
        raise FoundryError(f"training failed: {job.error} [{job.error_code}]", code="demo_training_failed")
    return job.result_model_id
