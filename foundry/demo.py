"""``foundry demo``: the whole flow on the embedded default, from an empty folder.

A script over the use cases (``foundry.usecases``) -- the same calls the CLI, the API and the
worker make -- printing as it goes; it knows nothing of the command line.

Migrate, onboard the OpenMoji catalog, freeze a licensed snapshot of it, train the licensed-only
base model on that snapshot (in this process, no broker needed), register it and save a sample
grid; then sign up a brand customer, start the real HTTP API, generate images through it, show
their attribution and the ledger, and verify one image's provenance.
"""

from __future__ import annotations

import hashlib
import io
import math
import shutil
import subprocess
import uuid
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from rich.console import Console

from foundry import migrate
from foundry.accounts import service as accounts_service
from foundry.attribution import service as attribution_service
from foundry.blobs import open_blob_store
from foundry.catalog import service as catalog_service
from foundry.catalog.models import Asset, CatalogImport
from foundry.config import Settings
from foundry.datasets import service as dataset_service
from foundry.datasets.models import DatasetSnapshot
from foundry.datasets.policy import HELDOUT_SPLIT
from foundry.datasets.schemas import SnapshotFilters
from foundry.db import session_factory
from foundry.errors import FoundryError
from foundry.generation.models import Generation
from foundry.models_registry import service as registry_service
from foundry.pricing import service as pricing_service
from foundry.processes import free_port, stop_process
from foundry.quality import service as quality_service
from foundry.quality.policy import summary_line
from foundry.rendering import counted, import_tables, job_progress, summary_tables
from foundry.training_jobs import service as job_service
from foundry.usecases.imports import run_import
from foundry.usecases.keys import issue_api_key
from foundry.usecases.training import submit_training_job
from provenance.c2pa_manifest import CA_FILE, init_signing_ca

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


def onboard(settings: Settings, source: Path, console: Console, *, requested_by: str = "demo") -> CatalogImport:
    with counted(console, f"importing {source.name}") as progress:
        batch = run_import(settings, source, source_format="openmoji", requested_by=requested_by, progress=progress)
    for table in import_tables(batch):
        console.print(table)
    return batch


def freeze_snapshot(settings: Settings, *, name: str, created_by: str = "demo") -> DatasetSnapshot:
    """Every asset licensed for base training right now, frozen, less the catalog's held-out split:
    the demo measures its model on those captions, so it must never have seen their images."""
    with session_factory(settings.resolved_database_url)() as session, session.begin():
        return dataset_service.create_snapshot(session=session, name=name, use="base_training",
                                               filters=SnapshotFilters(heldout="exclude"), created_by=created_by)


DEMO_PRESET = "demo"


def run_demo(settings: Settings, *, catalog: Path | None, console: Console, train_steps: int | None = None) -> None:
    """``train_steps`` overrides the demo preset's step count (tests use a few steps)."""
    url = settings.resolved_database_url
    console.rule("1. database")
    migrate.upgrade(url)
    console.print(f"schema at revision {migrate.current_revision(url)} ({url})")

    console.rule("2. onboard the licensed catalog")
    source = locate_catalog(settings, catalog, console)
    console.print(f"catalog: {source}")
    onboard(settings, source, console)

    console.rule("3. catalog summary")
    with session_factory(url)() as session:
        for table in summary_tables(catalog_service.catalog_summary(session=session)):
            console.print(table)

    console.rule("4. licensed snapshot")
    snapshot = freeze_snapshot(settings, name="openmoji-base")
    console.print(f"snapshot {snapshot.id}: {snapshot.entry_count} assets licensed for base training from "
                  f"{snapshot.contributor_count} contributors\nMerkle root {snapshot.merkle_root}")

    steps = f"{train_steps} steps" if train_steps else "its full budget"
    console.rule(f"5. train the licensed-only base model (preset {DEMO_PRESET!r}, {steps})")
    model_id = train_demo_model(settings, snapshot.id, train_steps, console)

    console.rule("6. the model and its lineage")
    with session_factory(url)() as session:
        model = registry_service.get_model(session=session, model_id=model_id)
        job = job_service.get_job(session=session, job_id=model.training_job_id)
        index = attribution_service.active_index(session=session, model=model)
    console.print(f"model {model.id} ({model.kind}), licensed_only={model.licensed_only}\n"
                  f"  snapshot {model.snapshot_id} root {model.snapshot_merkle_root}\n"
                  f"  weights sha256 {model.weights_sha256}\n  text encoder: {model.text_encoder_origin.get('kind')}\n"
                  f"  final loss {model.metrics.get('final_loss'):.4f} after {model.metrics.get('steps')} steps")
    budget = model.metrics.get("budget")
    if budget and budget["planned_steps"] < model.recipe.get("max_train_steps", 0):
        console.print(f"  [yellow]{budget['max_train_minutes']:g} minutes allowed {budget['planned_steps']} of the "
                      f"recipe's {model.recipe['max_train_steps']} steps on this CPU ({budget['seconds_per_step']:.2f} s "
                      f"a step)[/]")
    console.print(f"  attribution index {index.id}: {index.entry_count} training images, {index.method} "
                  f"v{index.version}, built in {index.build_seconds:.0f} s as the job's last stage"
                  if index else "  no attribution index (pro-rata royalties only)")
    store = open_blob_store(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url)
    grids = [a for a in job.artifacts if a["kind"] == "sample_grid"]
    if grids:
        target = settings.var_dir / "demo" / "sample_grid.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.get(grids[-1]["sha256"]))
        console.print(f"sample grid: {target}")
    measure_demo_model(settings, model_id, console)

    serve_and_generate(settings, model_id, console, custom_steps=train_steps or DEMO_CUSTOM_STEPS)


DEMO_QUALITY_PER_GROUP = 4
"""Held-out prompts per catalog group the demo measures (the quality benchmark measures all 452)."""


def measure_demo_model(settings: Settings, model_id, console: Console) -> None:
    """How well the model draws what it is asked: the catalog's frozen evaluator (trained once, on
    licensed renditions outside the held-out split), then a few held-out prompts per group."""
    from training.quality import SamplingSettings  # torch: loaded only when the demo measures
    from worker.quality import measure_model, train_split_evaluator

    sessions = session_factory(settings.resolved_database_url)
    store = open_blob_store(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url)
    with sessions() as session:
        evaluator = quality_service.current_evaluator(session=session, split=HELDOUT_SPLIT)
    if evaluator is None:
        with counted(console, "quality evaluator training steps") as progress:
            evaluator = train_split_evaluator(sessions=sessions, blob_store=store, created_by="demo",
                                              progress=progress)
    console.print(f"quality evaluator {evaluator.id} (sha256 {evaluator.sha256[:16]}): {len(evaluator.groups)} "
                  f"groups, real held-out balanced accuracy {evaluator.real_balanced_accuracy:.3f}")
    with counted(console, "measuring: generated images") as progress:
        measured = measure_model(sessions=sessions, blob_store=store, model_id=model_id, cache_dir=settings.var_dir,
                                 measured_by="demo", per_group=DEMO_QUALITY_PER_GROUP,
                                 sampling=SamplingSettings(num_inference_steps=20), progress=progress)
    sheet = settings.var_dir / "demo" / "quality_sheet.png"
    sheet.parent.mkdir(parents=True, exist_ok=True)
    sheet.write_bytes(store.get(measured.sheet_sha256))
    console.print(f"quality on {measured.metrics['images']} held-out prompts: {summary_line(measured.metrics)}\n"
                  f"contact sheet (held-out prompts x seeds): {sheet}")


def train_demo_model(settings: Settings, snapshot_id, train_steps: int | None, console: Console):
    """Submit one job of the demo preset and run it in this process, with the runner a worker uses."""
    overrides: dict = {"validation_prompts": ["grinning face", "red heart", "cat face", "sun with face"]}
    if train_steps:
        overrides |= {"max_train_steps": train_steps, "checkpoint_every": max(10, train_steps // 3),
                      "lr_warmup_steps": min(train_steps // 2, 100)}
    return train_inline(settings, console, recipe_kind="base", snapshot_id=snapshot_id, name="openmoji-base",
                        preset=DEMO_PRESET, overrides=overrides)


def train_inline(settings: Settings, console: Console, *, recipe_kind: str, snapshot_id, name: str,
                 overrides: dict, preset: str | None = None, base_model_id=None, requested_by: str = "demo"):
    """Submit one training job and run it in this process with the runner a worker uses: the model's id."""
    from worker.jobs import run_in_thread  # torch and diffusers: loaded only when the demo trains

    with session_factory(settings.resolved_database_url)() as session:
        job = submit_training_job(
            session=session, queue=None, recipe_kind=recipe_kind, snapshot_id=snapshot_id, name=name,
            requested_by=requested_by, preset=preset, overrides=overrides, base_model_id=base_model_id)
    with job_progress(console) as show:
        job = run_in_thread(settings, job.id, worker=requested_by, on_progress=show)
    if job.status != "succeeded":
        raise FoundryError(f"training failed: {job.error} [{job.error_code}]", code="demo_training_failed")
    return job.result_model_id


DEMO_TENANT = "Demo Brand Co"


def prepare_serving(settings: Settings, console: Console) -> tuple[str, str]:
    """Signing CA, a catch-all price, a tenant with a customer key and an admin key: (customer, admin)."""

    signing_dir = settings.resolved_signing_dir
    if not (signing_dir / CA_FILE).is_file():
        init_signing_ca(signing_dir)
        console.print(f"C2PA signing CA and ES256 leaf created in {signing_dir}")
    with session_factory(settings.resolved_database_url)() as session, session.begin():
        if not pricing_service.active_rules(session=session):
            pricing_service.set_price(session=session, unit_price=40, currency="USD", pool_share_bps=5000,
                                      training_step_price=1, created_by="demo")
        rule = pricing_service.active_rules(session=session)[0]
        tenant = next((t for t in accounts_service.list_tenants(session=session) if t.name == DEMO_TENANT), None)
        tenant = tenant or accounts_service.create_tenant(session=session, name=DEMO_TENANT)
        _, customer_key = issue_api_key(session=session, role="customer", name="demo customer",
                                                          tenant_id=tenant.id)
        _, admin_key = issue_api_key(session=session, role="admin", name="demo admin")
    console.print(f"tenant {tenant.id} ({tenant.name}); price {rule.unit_price} {rule.currency} per image, "
                  f"{rule.pool_share_bps / 100:g}% to the contributor pool")
    return customer_key, admin_key


def serve_and_generate(settings: Settings, model_id, console: Console, *, custom_steps: int) -> None:
    import os
    import sys
    import time

    import httpx
    from rich.table import Table

    console.rule("7. a brand customer, a price, and the signing CA")
    customer_key, admin_key = prepare_serving(settings, console)

    console.rule("8. start the HTTP API")
    port = free_port()
    log_path = settings.var_dir / "demo" / "api.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "FOUNDRY_VAR_DIR": str(settings.var_dir.resolve())}
    with log_path.open("ab") as log:
        server = subprocess.Popen([sys.executable, "-m", "foundry.cli", "api", "--port", str(port)], env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=300) as http:
            for _ in range(300):
                try:
                    if http.get("/v1/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None:
                    raise FoundryError(f"the API exited early; see {log_path}", code="demo_api_failed")
                time.sleep(0.2)
            console.print(f"API at {base} (log {log_path})")
            generate_through_api(http, settings, model_id, customer_key, admin_key, console, Table,
                                 custom_steps=custom_steps)
    finally:
        stop_process(server)


def generate_through_api(http, settings: Settings, model_id, customer_key: str, admin_key: str,
                         console: Console, Table, *, custom_steps: int) -> None:
    customer = {"Authorization": f"Bearer {customer_key}"}
    admin = {"Authorization": f"Bearer {admin_key}"}

    console.rule("9. generate through the API")
    request = {"model_id": str(model_id), "prompt": "grinning face", "num_images": 4, "steps": 30, "seed": 2026}
    response = http.post("/v1/generations", json=request, headers={**customer, "Idempotency-Key": "demo-1"})
    if response.status_code != 200:
        raise FoundryError(f"generation failed: HTTP {response.status_code} {response.text[:500]}",
                           code="demo_generation_failed")
    generation = response.json()
    replay = http.post("/v1/generations", json=request, headers={**customer, "Idempotency-Key": "demo-1"})
    console.print(f"generation {generation['id']}: {len(generation['images'])} images, seed {generation['seed']}, "
                  f"{generation['request']['width']}x{generation['request']['height']} px "
                  f"(delivered at {generation['images'][0]['delivery_width']} px, watermarked and signed); "
                  f"replaying the Idempotency-Key returned the same generation: "
                  f"{replay.json()['id'] == generation['id']}")
    out_dir = settings.var_dir / "demo"
    paths = []
    for image in generation["images"]:
        path = out_dir / f"generation-{image['index']}.png"
        path.write_bytes(http.get(image["url"], headers=customer).content)
        paths.append(path)
        flag = " NEAR-DUPLICATE of a training image" if image["near_duplicate"] else ""
        console.print(f"  {path}  nearest training image at pHash distance {image['nearest_distance']}{flag}")

    attribution = generation["attribution"]
    table = Table("contributor", "method", "assets", "share of pool", f"amount ({attribution['currency']} minor units)",
                  title=f"attribution ({attribution['method']}): charge {attribution['charge']}, "
                        f"pool {attribution['pool']}, platform {attribution['platform']} — "
                        f"{len({line['contributor_id'] for line in attribution['contributors']})} contributors, top 8")
    for line in attribution["contributors"][:8]:
        table.add_row(line["display_name"], line["method"], str(line["asset_count"]),
                      f"{line['share_ppm'] / 10_000:.3f}%", str(line["amount"]))
    console.print(table)
    paid = sum(line["amount"] for line in attribution["contributors"])
    console.print(f"contributor amounts sum to {paid} = pool {attribution['pool']}: {paid == attribution['pool']}")
    print_influential_images(settings, generation["id"], attribution, console, Table)

    console.rule("10. the ledger")
    me = http.get("/v1/me", headers=customer).json()
    balances = http.get("/v1/ledger/balances", headers=admin).json()
    usd = balances["balances"].get("USD", {})
    console.print(f"customer balance {me['balance']['amount']} USD minor units (owed to the foundry); "
                  f"platform revenue {usd.get('platform:revenue', 0)}; contributor payables "
                  f"{sum(v for k, v in usd.items() if k.startswith('contributor:'))}; "
                  f"all accounts sum to {balances['sums'].get('USD', 0)}")

    console.rule("11. verify provenance")
    with paths[0].open("rb") as handle:
        report = http.post("/v1/provenance/verify", headers=customer,
                           files={"image": (paths[0].name, handle, "image/png")}).json()
    console.print(f"{paths[0].name}: found by {report['method']}, Content Credentials {report['manifest']['verdict']}, "
                  f"altered={report['altered']}, generation {report['generation']['id']}, "
                  f"model {report['model']['name']} (snapshot root {report['lineage'][0]['snapshot_merkle_root'][:16]}…), "
                  f"licences {[item['license_code'] for item in report['licenses']]}, "
                  f"{report['contributors']['count']} contributors")
    stripped = _strip_metadata(paths[0].read_bytes())
    report = http.post("/v1/provenance/verify", headers=customer,
                       files={"image": ("stripped.png", stripped, "image/png")}).json()
    console.print(f"the same pixels with the manifest stripped: found by {report['method']} "
                  f"(watermark {report['watermark']}), generation {report['generation']['id']}")

    console.rule("12. an artist's statement")
    top = attribution["contributors"][0]
    artist_key = _artist_key(settings, top["contributor_id"])
    artist = {"Authorization": f"Bearer {artist_key}"}
    period = http.get("/v1/me/statements", headers=artist).json()["periods"][0]["period"]
    statement = http.get(f"/v1/me/statements/{period}", headers=artist).json()
    console.print(f"{statement['display_name']}, {period}: earned {statement['earned']} "
                  f"(pro rata {statement['pro_rata']}, influence {statement['influence']}) "
                  f"from {statement['outputs']} generation(s), "
                  f"shared by their {statement['assets_total']} images in the training data; payable {statement['payable']} "
                  f"(threshold {statement['threshold']}), carried over {statement['carried_out']}. "
                  f"Their page: {str(http.base_url).rstrip('/')}/artist (sign in with an artist key)")
    edit_through_api(http, model_id, customer, paths[0], out_dir, console)
    custom_model_through_api(http, settings, model_id, customer, out_dir, console, steps=custom_steps)


def edit_through_api(http, model_id, customer: dict, source: Path, out_dir: Path, console: Console) -> None:
    """Inpaint the lower half of a delivered image: an edit is charged, attributed and signed like any
    generation, and its manifest names the image it started from and the mask as ingredients."""
    console.rule("13. an inpainting edit")
    with Image.open(source) as picture:
        mask = Image.new("L", picture.size, 0)
    mask.paste(255, (0, mask.height // 2, mask.width, mask.height))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    response = http.post("/v1/edits", headers={**customer, "Idempotency-Key": "demo-edit-1"},
                         files={"image": (source.name, source.read_bytes(), "image/png"),
                                "mask": ("mask.png", buffer.getvalue(), "image/png")},
                         data={"model_id": str(model_id), "prompt": "grinning face", "operation": "inpaint",
                               "seed": "7", "steps": "30"})
    if response.status_code != 200:
        raise FoundryError(f"the edit failed: HTTP {response.status_code} {response.text[:500]}",
                           code="demo_generation_failed")
    edit = response.json()
    path = out_dir / "edit-0.png"
    path.write_bytes(http.get(edit["images"][0]["url"], headers=customer).content)
    report = http.post("/v1/provenance/verify", headers=customer,
                       files={"image": (path.name, path.read_bytes(), "image/png")}).json()
    ingredients = ", ".join(f"{item['relationship']} {item['sha256'][:12]}…" for item in report["manifest"]["ingredients"])
    console.print(f"edit {edit['id']}: the lower half of {source.name} repainted ({edit['request']['edit']}); "
                  f"charged {edit['price']['charge']}, pool {edit['attribution']['pool']}; {path}: Content Credentials "
                  f"{report['manifest']['verdict']}, ingredients: {ingredients}")


DEMO_BRAND_IMAGES = 20
DEMO_CUSTOM_STEPS = 300
DEMO_CATALOG_MIX = 100
"""Licensed catalog images mixed into the custom model's snapshot, so it keeps drawing what the base did."""
"""Steps of the demo's LoRA custom model (``benchmarks/custom_model.py`` measures what they learn)."""
MASCOT = "zorblax"
"""The demo brand's mascot: not in the catalog, so only a custom model can draw it."""


def mascot_png(number: int, size: int = 256) -> bytes:
    """The brand's mascot in pose ``number``: a purple seven-pointed star with two eyes, turned, scaled and
    moved a little, its purple varied, on white."""
    rng = np.random.default_rng(1000 + number)
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    centre = size / 2 + rng.uniform(-18, 18, size=2)
    outer, inner = size * rng.uniform(0.34, 0.44), size * rng.uniform(0.16, 0.21)
    turn = rng.uniform(0, 2 * math.pi / 7)
    points = [(centre[0] + (outer if k % 2 == 0 else inner) * math.cos(turn + k * math.pi / 7),
               centre[1] + (outer if k % 2 == 0 else inner) * math.sin(turn + k * math.pi / 7)) for k in range(14)]
    purple = tuple(int(v) for v in np.clip(np.array([128, 40, 170]) + rng.integers(-20, 21, size=3), 0, 255))
    draw.polygon(points, fill=purple, outline=(40, 0, 60), width=max(2, size // 64))
    for side in (-1, 1):
        eye = (centre[0] + side * size * 0.08, centre[1] - size * 0.04)
        radius, pupil = size * 0.055, size * 0.025
        draw.ellipse((eye[0] - radius, eye[1] - radius, eye[0] + radius, eye[1] + radius), fill="white",
                     outline="black", width=2)
        draw.ellipse((eye[0] - pupil, eye[1] - pupil, eye[0] + pupil, eye[1] + pupil), fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def custom_model_through_api(http, settings: Settings, model_id, customer: dict, out_dir: Path, console: Console,
                             *, steps: int) -> None:
    """A brand customer's own model: its mascot images uploaded with a rights attestation, a LoRA of the
    licensed base trained on them (charged per step), and images of the mascot from it."""
    from worker.jobs import run_in_thread  # torch and diffusers: loaded only when the demo trains

    console.rule("14. a custom model from the brand's own images")
    uploaded = http.post("/v1/brand-assets", headers=customer, data={
        "attest": "true", "attested_by": "Demo Brand Co legal", "tags": "mascot",
        "captions": [f"{MASCOT} the purple star mascot"] * DEMO_BRAND_IMAGES},
        files=[("files", (f"{MASCOT}-{n}.png", mascot_png(n), "image/png")) for n in range(DEMO_BRAND_IMAGES)])
    if uploaded.status_code != 201:
        raise FoundryError(f"brand upload failed: HTTP {uploaded.status_code} {uploaded.text[:500]}",
                           code="demo_generation_failed")
    created = http.post("/v1/custom-models", headers={**customer, "Idempotency-Key": "demo-custom-1"}, json={
        "name": f"{MASCOT}-lora", "kind": "lora", "base_model_id": str(model_id), "brand_assets": {"tags": ["mascot"]},
        "catalog": {"limit": DEMO_CATALOG_MIX}, "trigger_word": MASCOT, "steps": steps})
    if created.status_code != 202:
        raise FoundryError(f"custom model refused: HTTP {created.status_code} {created.text[:500]}",
                           code="demo_training_failed")
    custom = created.json()
    console.print(f"{uploaded.json()['rows_imported']} brand images accepted; custom model {custom['id']} queued "
                  f"on {custom['brand_images']} brand images and {custom['catalog_images']} licensed catalog images "
                  f"mixed in (charge {custom['charge']}); training it here with the runner a worker uses")
    with job_progress(console) as show:
        job = run_in_thread(settings, uuid.UUID(custom["id"]), worker="demo", on_progress=show)
    if job.status != "succeeded":
        raise FoundryError(f"custom model training failed: {job.error} [{job.error_code}]",
                           code="demo_training_failed")
    custom = http.get(f"/v1/custom-models/{custom['id']}", headers=customer).json()
    made = http.post("/v1/generations", headers=customer, json={
        "model_id": custom["model_id"], "prompt": f"{MASCOT} the purple star mascot", "num_images": 4, "seed": 11,
        "steps": 30}).json()
    for image in made["images"]:
        (out_dir / f"custom-{image['index']}.png").write_bytes(http.get(image["url"], headers=customer).content)
    attribution = made["attribution"]
    console.print(f"custom model {custom['model_id']} ({custom['status']}, {custom['step']} steps) drew 4 images of "
                  f"{MASCOT}: {out_dir}/custom-*.png; pool {attribution['pool']} to "
                  f"{len({line['contributor_id'] for line in attribution['contributors']})} contributors of the "
                  "licensed base and of the mixed-in catalog images (the brand's own images earn nothing)")


def print_influential_images(settings: Settings, generation_id: str, attribution: dict, console: Console,
                             Table) -> None:
    """The training images these outputs' influence pool paid most (the index's payment view); ``foundry
    generations explain`` also shows each output's evidence view."""
    import uuid

    influential = sorted(((asset, line["display_name"]) for line in attribution["contributors"]
                          if line["method"] == "influence" for asset in line["top_assets"]),
                         key=lambda item: -item[0]["share_ppm"])[:8]
    if not influential:
        with session_factory(settings.resolved_database_url)() as session:
            recorded = session.get(Generation, uuid.UUID(generation_id)).attribution.get("parameters", {})
        why = recorded.get("influence_unavailable", {}).get("unavailable", "this model has no influence index")
        console.print(f"influence not used: {why}; the whole pool was split pro rata")
        return
    with session_factory(settings.resolved_database_url)() as session:
        captions = {asset.id: asset.caption for asset in session.query(Asset).filter(
            Asset.id.in_([uuid.UUID(item["asset_id"]) for item, _ in influential]))}
    table = Table("training image", "contributor", "share of influence",
                  title="training images paid most by influence (D-TRAK, payment view)")
    for item, name in influential:
        table.add_row(captions.get(uuid.UUID(item["asset_id"]), "?") or "?", name, f"{item['share_ppm'] / 10_000:.2f}%")
    console.print(table)


def _artist_key(settings: Settings, contributor_id: str) -> str:
    import uuid


    with session_factory(settings.resolved_database_url)() as session, session.begin():
        _, key = issue_api_key(session=session, role="artist", name="demo artist",
                                                 contributor_id=uuid.UUID(contributor_id))
    return key


def _strip_metadata(png: bytes) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()
