"""Custom-model benchmark: does a brand customer's LoRA learn its mascot without forgetting the catalog?

1. The base: the ``demo`` preset trained on the quality benchmark's training snapshot (OpenMoji
   without its held-out split; the onboarding and the frozen evaluator are shared with
   ``benchmarks/quality.py`` under ``--work``), or with ``--base-run`` a base that benchmark already
   trained there (the ``quality`` preset's), registered as a shared licensed-only model.
2. A brand customer (its own tenant and key) uploads 20 images of a mascot that is not in the catalog
   (drawn here: a purple seven-pointed star with eyes, in varied poses) through ``POST /v1/brand-assets``,
   then makes a LoRA custom model of the demo base through ``POST /v1/custom-models`` with licensed catalog
   images mixed in (``--catalog-mix``, from the training split only: prior preservation); a training worker
   runs the job (timed: ``train_minutes``).
3. Brand-concept fidelity: the same prompts naming the mascot are generated through ``POST /v1/generations``
   with the base model (before) and the custom model (after). An output counts when its nearest neighbour
   among every image the custom model learnt from (the catalog's training renditions and the 20 brand
   images), in the frozen evaluator's feature space, is a brand image.
4. ``base_quality_ratio``: the custom model's prompt-following balanced accuracy on held-out catalog
   captions over the base model's, same prompts, seeds and sampling (1.0: nothing forgotten).

    python benchmarks/custom_model.py --out benchmarks/results/custom_model.json

Prints the JSON report; targets: fidelity after >= 0.8, before <= 0.05, base_quality_ratio >= 0.9.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np
import torch
from fastapi.testclient import TestClient
from PIL import Image, ImageFilter

from api.app import create_app
from benchmarks.quality import examples_of, labelled_images, prepare_snapshots
from benchmarks.quality_common import HeldoutSets, evaluator_for, run_recipe
from benchmarks.reporting import publish
from foundry import migrate
from foundry.accounts import service as accounts_service
from foundry.blobs import open_blob_store
from foundry.config import Settings
from foundry.db import session_factory
from foundry.demo import MASCOT, mascot_png
from foundry.models_registry import service as registry_service
from foundry.pricing import service as pricing_service
from provenance.c2pa_manifest import init_signing_ca
from recipes import CUSTOM_MODEL_SETTINGS, CUSTOM_TRIGGER_SETTINGS, Recipe, preset_recipe
from training.engine import RESULT_FILE, native_cpu_bf16
from training.pipelines import load_pipeline
from training.quality import EvaluatorConfig, SamplingSettings, measure_pipeline, round_floats
from worker import jobs as job_runner

BRAND_IMAGES = 20
BRAND_TENANT = "Mascot Co"
PROMPTS = (f"{MASCOT}", f"{MASCOT} waving", f"a happy {MASCOT}", f"{MASCOT} on a white background",
           f"{MASCOT}, the brand mascot")
"""Prompts that name the mascot and do not describe it: only a model that learnt the name can draw it."""
IMAGES_PER_PROMPT = 8
"""Two requests of four images per prompt: one image moves a prompt's share by 1/8, the whole by 1/40."""
REQUEST_IMAGES = 4
SEED = 7


def pixels(data: bytes, size: int = 32) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((size, size), Image.Resampling.BOX))


def generate(client: TestClient, headers: dict, model_id: str, prompts: tuple[str, ...] = PROMPTS,
             guidance: float | None = None, seed: int = SEED) -> list[np.ndarray]:
    """Every prompt, IMAGES_PER_PROMPT images each, through the API (at the model's served guidance unless
    ``guidance`` is given): the raw outputs."""
    chosen = {} if guidance is None else {"guidance_scale": guidance}
    outputs = []
    for number, prompt in enumerate(prompts):
        for request in range(IMAGES_PER_PROMPT // REQUEST_IMAGES):
            answer = client.post("/v1/generations", headers=headers, json={
                "model_id": model_id, "prompt": prompt, "num_images": REQUEST_IMAGES,
                "seed": seed + 100 * number + 1000 * request, "steps": 25, **chosen})
            if answer.status_code != 200:
                raise SystemExit(f"generation failed: {answer.status_code} {answer.text[:400]}")
            for image in answer.json()["images"]:
                outputs.append(pixels(client.get(f"{image['url']}?variant=raw", headers=headers).content))
    return outputs


def brand_share(outputs: list[np.ndarray], evaluator, brand: np.ndarray, catalog: np.ndarray) -> float:
    """Share of outputs whose nearest learnt-from image, in the evaluator's features, is a brand image."""
    reference = np.concatenate([evaluator.predict(brand).features, evaluator.predict(catalog).features])
    return _nearest_is_brand(evaluator.predict(np.stack(outputs)).features, reference, len(brand))


def brand_share_in_pixels(outputs: list[np.ndarray], brand: np.ndarray, catalog: np.ndarray) -> float:
    """The same question asked of raw 32 px pixels (a second view: the evaluator's features were learnt to
    tell OpenMoji groups apart, not to recognise a shape it never saw)."""
    flat = lambda images: np.asarray(images, dtype=np.float32).reshape(len(images), -1) / 255.0
    return _nearest_is_brand(flat(outputs), np.concatenate([flat(brand), flat(catalog)]), len(brand))


def softened(images: list[np.ndarray], radius: float = 0.7) -> list[np.ndarray]:
    """A slight Gaussian blur: soft edges, the shape and colours kept."""
    return [np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius))) for image in images]


def _nearest_is_brand(queries: np.ndarray, reference: np.ndarray, brand_count: int) -> float:
    squared = (reference ** 2).sum(1)
    nearest = [int(np.argmin(squared - 2 * reference @ query)) for query in queries]
    return float(np.mean([index < brand_count for index in nearest]))


def per_prompt(outputs: list[np.ndarray], evaluator, brand: np.ndarray, catalog: np.ndarray) -> dict[str, float]:
    """Fidelity of each prompt's images on their own: which wordings the model binds to the mascot."""
    return {prompt: brand_share(outputs[n * IMAGES_PER_PROMPT:(n + 1) * IMAGES_PER_PROMPT], evaluator, brand, catalog)
            for n, prompt in enumerate(PROMPTS)}


def custom_settings(assignments: list[str]) -> dict:
    """``KEY=JSON`` overrides of the custom LoRA's settings, for ablations (the API's defaults otherwise)."""
    overrides = {}
    for assignment in assignments:
        key, _, value = assignment.partition("=")
        if key not in Recipe.__dataclass_fields__:
            raise SystemExit(f"--custom-setting: {key!r} is not a recipe field")
        overrides[key] = json.loads(value)
    return overrides


def base_of(args: argparse.Namespace) -> tuple[Recipe, Path]:
    """The base's recipe and pipeline folder: a run exported by another benchmark, else the demo preset's."""
    if args.base_run is not None:
        result = args.base_run / RESULT_FILE
        if not result.is_file():
            raise SystemExit(f"--base-run: {result} is missing (train and export the base first)")
        trained = json.loads(result.read_text(encoding="utf-8"))
        return Recipe.from_dict(trained["recipe"]), Path(trained["model_path"])
    recipe = preset_recipe("demo")
    if args.base_steps:
        recipe = recipe.replace(max_train_steps=args.base_steps, checkpoint_every=0, lr_warmup_steps=1)
    return recipe, args.work / "runs" / "custom-model-base" / "pipeline"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench-quality",
                        help="shared with benchmarks/quality.py: its onboarding and evaluator are reused")
    parser.add_argument("--catalog", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=800, help="training steps of the custom model")
    parser.add_argument("--base-steps", type=int, default=None, help="override the demo preset's steps (smoke runs)")
    parser.add_argument("--reuse-base", action="store_true",
                        help="reuse the demo base a previous run exported under --work (measured again, not retrained)")
    parser.add_argument("--base-run", type=Path, default=None,
                        help="a base run folder another benchmark trained and exported on the same training snapshot "
                             "(e.g. var/bench-quality/runs/quality from benchmarks/quality.py): its pipeline and recipe "
                             "are the base instead of the demo preset (measured again, not retrained)")
    parser.add_argument("--catalog-mix", type=int, default=400,
                        help="licensed catalog images mixed into the custom model's snapshot (0: brand images only)")
    parser.add_argument("--custom-setting", action="append", default=[], metavar="KEY=JSON",
                        help="override one of the custom LoRA's recipe settings (ablations), e.g. caption_dropout=0.3")
    parser.add_argument("--per-group", type=int, default=12, help="held-out captions per group for the quality ratio")
    parser.add_argument("--evaluator-seeds", type=lambda text: [int(v) for v in text.split(",") if v],
                        default=[1, 2, 3], help="also measure fidelity with evaluators trained from these seeds")
    parser.add_argument("--guidance-sweep", type=lambda text: [float(v) for v in text.split(",") if v], default=[],
                        help="also measure the custom model's fidelity at these guidance scales, e.g. 3,5,7")
    parser.add_argument("--seed", type=int, default=SEED,
                        help="first generation seed of the fidelity outputs (another seed: outputs no setting was "
                             "chosen on)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "custom_model.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = custom_settings(args.custom_setting)  # over the trigger's settings too: they apply last
    CUSTOM_MODEL_SETTINGS["lora"] = {**CUSTOM_MODEL_SETTINGS["lora"], **overrides}
    CUSTOM_TRIGGER_SETTINGS["lora"] = {**CUSTOM_TRIGGER_SETTINGS["lora"], **overrides}
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    # 1. the base, on the quality benchmark's training snapshot, measured on held-out captions
    snapshots = prepare_snapshots(args.work, args.catalog)
    training = labelled_images(snapshots["training"]["items"])
    heldout_subset = labelled_images(snapshots["evaluation"]["items"]).per_group(args.per_group)
    heldout = HeldoutSets.of(training, heldout_subset, args.per_group)
    evaluator, digest, _ = evaluator_for(args.work, training, snapshots["training"]["content_sha256"], EvaluatorConfig())
    recipe, base_folder = base_of(args)
    sampling = SamplingSettings().for_recipe(recipe.to_dict())
    (args.work / "sheets").mkdir(parents=True, exist_ok=True)
    if args.base_run is not None or (args.reuse_base and base_folder.is_dir()):
        base_pipeline = load_pipeline(base_folder, device="cpu")
        base_metrics, _ = measure_pipeline(base_pipeline, evaluator, heldout.full, heldout.reference_full,
                                           resolution=32, sampling=sampling)
        base_run = {"gen_balanced_acc": base_metrics["gen_balanced_acc"], "train_minutes": None}
    else:
        base_run = run_recipe("custom-model-base", recipe, examples_of(snapshots["training"]["items"]), evaluator,
                              heldout, work=args.work, curve_points=1, sampling=sampling,
                              results=args.work / "sheets", export=True)

    # 2. a brand customer, its uploads and its custom model, through the API
    settings = Settings(var_dir=args.work / "var", rate_limit_per_minute=100_000, rate_limit_burst=1000,
                        admin_api_key="benchmark-admin")
    migrate.upgrade(settings.resolved_database_url)
    sessions = session_factory(settings.resolved_database_url)
    blob_store = open_blob_store(settings.resolved_blob_url)
    if not (settings.resolved_signing_dir / "ca.pem").is_file():
        init_signing_ca(settings.resolved_signing_dir)
    with sessions() as session, session.begin():
        base = registry_service.register_trained(
            session=session, blob_store=blob_store, folder=base_folder, name=f"custom-model-base-{uuid.uuid4().hex[:6]}",
            kind="base", model_format="diffusers_pipeline", snapshot_id=uuid.UUID(snapshots["training"]["snapshot_id"]),
            snapshot_merkle_root=snapshots["training"]["merkle_root"], recipe=recipe.to_dict(),
            text_encoder_origin={"kind": "trained_from_scratch"}, parent=None, training_job_id=uuid.uuid4(),
            metrics={})
        # one brand tenant per deployment: a rerun finds its mascot already uploaded (a duplicate is not re-added)
        tenant = next((t for t in accounts_service.list_tenants(session=session) if t.name == BRAND_TENANT), None) \
            or accounts_service.create_tenant(session=session, name=BRAND_TENANT)
        _, key = accounts_service.create_api_key(session=session, role="customer", name="brand", tenant_id=tenant.id)
        pricing_service.set_price(session=session, unit_price=10, currency="USD", pool_share_bps=5000,
                                  training_step_price=1, model_id=base.id, created_by="benchmark")
        pricing_service.set_price(session=session, unit_price=10, currency="USD", pool_share_bps=5000,
                                  created_by="benchmark")  # the custom model's generations
        base_id = str(base.id)
    headers = {"Authorization": f"Bearer {key}"}
    brand_pngs = [mascot_png(number) for number in range(BRAND_IMAGES)]
    with TestClient(create_app(settings)) as client:
        uploaded = client.post("/v1/brand-assets", headers=headers, data={
            "attest": "true", "attested_by": "Mascot Co legal", "tags": "mascot",
            "captions": [f"{MASCOT} the purple star mascot" for _ in brand_pngs]},
            files=[("files", (f"{MASCOT}-{n}.png", data, "image/png")) for n, data in enumerate(brand_pngs)])
        if uploaded.status_code != 201:
            raise SystemExit(f"upload failed: {uploaded.status_code} {uploaded.text[:400]}")
        rejected = {r["code"] for r in uploaded.json()["report"]["rejections"]}
        if rejected - {"duplicate_of_existing_asset"}:
            raise SystemExit(f"brand images rejected: {rejected}")
        before = generate(client, headers, base_id, seed=args.seed)
        mix = {"catalog": {"limit": args.catalog_mix, "heldout": "exclude"}} if args.catalog_mix else {}
        created = client.post("/v1/custom-models", headers=headers, json={
            "name": f"{MASCOT}-lora", "kind": "lora", "base_model_id": base_id, "brand_assets": {"tags": ["mascot"]},
            "steps": args.steps, "trigger_word": MASCOT, **mix})
        if created.status_code != 202:
            raise SystemExit(f"custom model refused: {created.status_code} {created.text[:400]}")
        job_id = uuid.UUID(created.json()["id"])
        started = time.perf_counter()
        status = job_runner.run_job(settings, job_id, worker="benchmark")
        train_minutes = (time.perf_counter() - started) / 60
        custom = client.get(f"/v1/custom-models/{job_id}", headers=headers).json()
        if status != "succeeded":
            raise SystemExit(f"the custom model's training {status}: {custom.get('error')}")
        after = generate(client, headers, custom["model_id"], seed=args.seed)
        described = generate(client, headers, custom["model_id"], (f"{MASCOT} the purple star mascot",), seed=args.seed)
        swept = {scale: generate(client, headers, custom["model_id"], guidance=scale, seed=args.seed)
                 for scale in args.guidance_sweep}

    # 3. fidelity, 4. what the custom model kept of the catalog
    brand = np.stack([pixels(data) for data in brand_pngs])
    with sessions() as session:
        custom_model = registry_service.get_model(session=session, model_id=uuid.UUID(custom["model_id"]))
        adapter = registry_service.materialize(model=custom_model, blob_store=blob_store,
                                               cache_dir=settings.var_dir / "models")
        # measured as it is served: at the adapter's own guidance where its recipe names one
        custom_sampling = SamplingSettings().for_recipe(recipe.to_dict(), custom_model.recipe)
    custom_pipeline = load_pipeline(base_folder, adapters=(adapter,), device="cpu")
    custom_pipeline.set_progress_bar_config(disable=True)
    custom_metrics, sheet = measure_pipeline(custom_pipeline, evaluator, heldout.full, heldout.reference_full,
                                             resolution=32, sampling=custom_sampling)
    sheet.save(args.out.parent / f"{args.out.stem}_sheet.png")
    mascot_sheet = Image.new("RGB", (32 * IMAGES_PER_PROMPT * 2, 32 * len(PROMPTS)), "white")
    for number, (old, new) in enumerate(zip(before, after, strict=True)):
        row, column = divmod(number, IMAGES_PER_PROMPT)
        mascot_sheet.paste(Image.fromarray(old), (32 * column, 32 * row))
        mascot_sheet.paste(Image.fromarray(new), (32 * (column + IMAGES_PER_PROMPT), 32 * row))
    mascot_sheet.resize((mascot_sheet.width * 4, mascot_sheet.height * 4), Image.Resampling.NEAREST).save(
        args.out.parent / f"{args.out.stem}_mascot.png")
    catalog = training.images
    other_evaluators = {seed: evaluator_for(args.work, training, snapshots["training"]["content_sha256"],
                                            EvaluatorConfig(seed=seed))[0] for seed in args.evaluator_seeds}
    unseen = [pixels(mascot_png(n)) for n in range(BRAND_IMAGES, 2 * BRAND_IMAGES)]
    report = round_floats({
        "benchmark": "custom_model",
        "fidelity_before": brand_share(before, evaluator, brand, catalog),
        "fidelity_after": brand_share(after, evaluator, brand, catalog),
        "fidelity_after_by_prompt": per_prompt(after, evaluator, brand, catalog),
        # The same test in the features of evaluators that differ only in their seed: how much of a figure
        # is the evaluator's own training noise.
        "fidelity_after_by_evaluator_seed": {str(seed): brand_share(after, other, brand, catalog)
                                             for seed, other in other_evaluators.items()},
        "fidelity_after_training_caption": brand_share(described, evaluator, brand, catalog),
        "fidelity_after_by_guidance": {str(scale): {"features": brand_share(images, evaluator, brand, catalog),
                                                    "pixels": brand_share_in_pixels(images, brand, catalog)}
                                       for scale, images in swept.items()},
        "fidelity_ceiling": brand_share(unseen, evaluator, brand, catalog),
        # The same unseen poses softened as a 32 px generator draws them: what the feature test credits
        # when the shape is right and the edges are not crisp.
        "fidelity_ceiling_blurred": brand_share(softened(unseen), evaluator, brand, catalog),
        "fidelity_ceiling_pixels": brand_share_in_pixels(unseen, brand, catalog),
        "fidelity_ceiling_blurred_pixels": brand_share_in_pixels(softened(unseen), brand, catalog),
        "fidelity_before_pixels": brand_share_in_pixels(before, brand, catalog),
        "fidelity_after_pixels": brand_share_in_pixels(after, brand, catalog),
        "train_minutes": train_minutes,
        "base_quality_ratio": custom_metrics["gen_balanced_acc"] / base_run["gen_balanced_acc"],
        "base_gen_balanced_acc": base_run["gen_balanced_acc"],
        "custom_gen_balanced_acc": custom_metrics["gen_balanced_acc"],
        "targets": {"fidelity_after": ">= 0.8", "fidelity_before": "<= 0.05", "base_quality_ratio": ">= 0.9"},
        "settings": {"brand_images": BRAND_IMAGES, "prompts": list(PROMPTS), "images_per_prompt": IMAGES_PER_PROMPT,
                     "custom_steps": args.steps, "kind": "lora", "seed": args.seed,
                     "base": str(args.base_run) if args.base_run else "demo preset",
                     "brand_images_in_snapshot": custom["brand_images"],
                     "catalog_images_in_snapshot": custom["catalog_images"],
                     "custom_recipe": {**CUSTOM_MODEL_SETTINGS["lora"], **CUSTOM_TRIGGER_SETTINGS["lora"]},
                     "base_train_minutes": base_run["train_minutes"], "heldout_prompts": len(heldout.full),
                     "guidance_scale": sampling.guidance_scale,
                     "custom_guidance_scale": custom_sampling.guidance_scale, "threads": args.threads, "cores": os.cpu_count(),
                     "cpu_capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": native_cpu_bf16()},
        "classifier_sha256": digest,
        "custom_model": {"id": custom["model_id"], "job_id": str(job_id), "charge": custom.get("charge")},
        "sheets": [f"{args.out.stem}_mascot.png (left: base, right: custom model)",
                   f"{args.out.stem}_sheet.png (custom model, held-out catalog prompts)"],
    })
    return publish(report, args.out)


if __name__ == "__main__":
    main()
