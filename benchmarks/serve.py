"""Serving benchmark: per-image latency through the real HTTP server against a bare pipeline call.

Setup (skipped when ``--var-dir`` already holds a served model): onboard the OpenMoji catalog,
snapshot it and train the demo's base model shape for a few steps (weights do not matter for
latency; the catalog makes attribution realistic: 4,300 assets, 121 contributors).

Then, on the same model and settings (prompt, steps, guidance, size, one thread each side):
* bare: ``DiffusionPipeline.from_pretrained(folder)(...)`` in this process, seeded generator;
* served: ``uvicorn`` in a subprocess, synchronous ``POST /v1/generations`` over HTTP (auth,
  validation, idempotency bookkeeping, render, attribution, ledger, watermark, C2PA, storage),
  timed at the client until the JSON answer arrives.

    python benchmarks/serve.py [--requests 20] [--steps 30] [--images 1] [--var-dir DIR]
    python benchmarks/serve.py --edit inpaint --out benchmarks/results/serve_cpu_edit.json

``--edit`` times an edit instead (``POST /v1/edits`` with an image and, for ``inpaint``, a mask, against
the model family's diffusers edit pipeline called on the same canvas): upload checks, the catalog
guard, staging and the ingredients in the manifest are all on the served side.

Prints one JSON object: median per-image latency of each side, ``ratio`` = served / bare (and
without the influence scoring), the share of the served latency spent in provenance (watermark +
Content Credentials + hashes), and the influence attribution's time against the render of the same
request (the model's attribution index is built by its training job, as in production).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
from benchmarks.reporting import publish

OPENMOJI = Path(os.environ.get("FOUNDRY_OPENMOJI_TGZ", REPO_ROOT.parent / "shared/datasets/openmoji-17.0.0.tgz"))


def prepare(var_dir: Path, train_steps: int, cascade_steps: int) -> tuple[str, str, tuple[Path, Path | None]]:
    """(model id, customer key, (model folder, upscaler folder or None)) in an embedded deployment under
    ``var_dir``; with ``cascade_steps`` the served model is an upscaler trained after the base model."""
    from rich.console import Console

    from foundry import migrate
    from foundry.blobs import open_blob_store
    from foundry.config import Settings
    from foundry.db import session_factory
    from foundry.demo import freeze_snapshot, onboard, prepare_serving, train_demo_model, train_inline
    from foundry.models_registry import service as registry_service

    settings = Settings(var_dir=var_dir)
    console = Console(stderr=True)
    # progress bars and tables on stderr (console): stdout carries only the JSON
    migrate.upgrade(settings.resolved_database_url)
    wanted = "upscaler" if cascade_steps else "base"
    with session_factory(settings.resolved_database_url)() as session:
        models = registry_service.list_models(session=session, limit=50)
    existing = next((m for m in models if m.kind == wanted), None)
    base = next((m for m in models if m.kind == "base"), None)
    if existing is not None:
        model_id = existing.id
    else:
        if base is None:
            onboard(settings, OPENMOJI, console, requested_by="benchmark")
            snapshot_id = freeze_snapshot(settings, name="bench", created_by="benchmark").id
            base_id = train_demo_model(settings, snapshot_id, train_steps, console)
        else:
            snapshot_id, base_id = base.snapshot_id, base.id
        model_id = base_id if not cascade_steps else train_inline(
            settings, console, recipe_kind="upscaler", snapshot_id=snapshot_id, name="bench-upscaler",
            base_model_id=base_id, requested_by="benchmark",
            overrides={"max_train_steps": cascade_steps, "checkpoint_every": 0, "lr_warmup_steps": 0})
    customer_key, _ = prepare_serving(settings, console)
    store = open_blob_store(settings.resolved_blob_url)
    with session_factory(settings.resolved_database_url)() as session:
        model = registry_service.get_model(session=session, model_id=model_id)
        pipeline, _ = registry_service.serving_chain(session=session, model=model)
        upscaler = registry_service.upscaling_stage(model)
        folders = tuple(registry_service.materialize(model=stage, blob_store=store, cache_dir=var_dir / "models")
                        if stage is not None else None for stage in (pipeline, upscaler))
    return str(model_id), customer_key, folders


EDIT_SIZE = 256
"""Edits start from a 256 px picture, the size the foundry delivers."""


def edit_inputs(operation: str) -> tuple[bytes, bytes | None, dict]:
    """The picture (not in the catalog), the mask (inpaint: its left half) and the form fields of an edit."""
    import io

    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (EDIT_SIZE, EDIT_SIZE), "white")
    ImageDraw.Draw(picture).ellipse((40, 60, 220, 200), fill=(30, 120, 230), outline=(0, 0, 0), width=6)
    mask = None
    if operation == "inpaint":
        mask = Image.new("L", picture.size, 0)
        mask.paste(255, (0, 0, EDIT_SIZE // 2, EDIT_SIZE))

    def png(image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    fields = {"operation": operation, **({"pad_right": str(EDIT_SIZE // 2)} if operation == "outpaint" else {})}
    return png(picture), png(mask) if mask is not None else None, fields


def bare_edit_call(pipeline, operation: str, size: int):
    """The diffusers edit pipeline of the model's family and its inputs on the model's canvas."""
    import io

    from PIL import Image

    from foundry.generation.editing import Padding, edit_canvas, plan_edit
    from training.pipelines import editing_pipeline

    image, mask, fields = edit_inputs(operation)
    plan = plan_edit(operation=operation, strength=None, has_mask=mask is not None,
                     padding=Padding(right=int(fields.get("pad_right", 0))))
    canvas, canvas_mask = edit_canvas(plan, Image.open(io.BytesIO(image)),
                                      Image.open(io.BytesIO(mask)) if mask else None, size)
    edited = editing_pipeline(pipeline, painting=canvas_mask is not None)
    return edited, {"image": canvas, "strength": plan.strength, **({"mask_image": canvas_mask} if canvas_mask else {})}


def bare_latencies(folders: tuple[Path, Path | None], *, prompt: str, steps: int, guidance: float, images: int,
                   requests: int, edit: str | None = None) -> list[float]:
    """The pipeline called directly, as a diffusers user would (a cascade: both stages, loaded as served)."""
    import torch
    from diffusers import DiffusionPipeline
    from diffusers.utils import logging as diffusers_logging

    from training.pipelines import load_cascade

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    folder, upscaler = folders
    pipeline = DiffusionPipeline.from_pretrained(str(folder)) if upscaler is None else load_cascade(folder, upscaler)
    pipeline.set_progress_bar_config(disable=True)
    size = pipeline.unet.config.sample_size if upscaler is None else None  # a cascade delivers at its own size
    kwargs = {"clean_caption": False} if type(pipeline).__name__ == "IFPipeline" else {}
    sizes = {"height": size, "width": size}
    if edit is not None:
        pipeline, sizes = bare_edit_call(pipeline, edit, size or pipeline.upscaler.unet.config.sample_size)
    latencies = []
    for request in range(requests + 2):
        generators = [torch.Generator().manual_seed(1000 + request * 8 + i) for i in range(images)]
        started = time.perf_counter()
        with torch.inference_mode():
            pipeline(prompt, num_inference_steps=steps, guidance_scale=guidance, num_images_per_prompt=images,
                     generator=generators, output_type="pil", **sizes, **kwargs)
        if request >= 2:  # two warm-up calls, as on the served side
            latencies.append((time.perf_counter() - started) / images)
    return latencies


def served_latencies(var_dir: Path, model_id: str, key: str, *, prompt: str, steps: int, guidance: float,
                     images: int, requests: int, edit: str | None = None) -> tuple[list[float], list[dict]]:
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "FOUNDRY_VAR_DIR": str(var_dir), "OMP_NUM_THREADS": "1",
           "FOUNDRY_RATE_LIMIT_PER_MINUTE": "100000", "FOUNDRY_RATE_LIMIT_BURST": "1000"}
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--port", str(port),
                               "--log-level", "warning"], env=env, cwd=REPO_ROOT)
    latencies, timings = [], []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600,
                          headers={"Authorization": f"Bearer {key}"}) as http:
            for _ in range(300):
                try:
                    if http.get("/v1/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            for request in range(requests + 2):
                body = {"model_id": model_id, "prompt": prompt, "steps": steps, "guidance_scale": guidance,
                        "num_images": images, "seed": 1000 + request * 8}
                started = time.perf_counter()
                if edit is None:
                    response = http.post("/v1/generations", json=body)
                else:
                    image, mask, fields = edit_inputs(edit)
                    files = {"image": ("in.png", image, "image/png"),
                             **({"mask": ("mask.png", mask, "image/png")} if mask else {})}
                    response = http.post("/v1/edits", files=files,
                                         data={**{k: str(v) for k, v in body.items()}, **fields})
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    raise SystemExit(f"served request failed: {response.status_code} {response.text[:400]}")
                if request >= 2:
                    latencies.append(elapsed / images)
                    timings.append({"generation_id": response.json()["id"], "latency_s": elapsed})
    finally:
        server.terminate()
        server.wait(timeout=30)
    from foundry.config import Settings
    from foundry.db import session_factory
    from foundry.generation.models import Generation

    with session_factory(Settings(var_dir=var_dir).resolved_database_url)() as session:
        for item in timings:
            item.update(session.get(Generation, __import__("uuid").UUID(item["generation_id"])).timings)
    return latencies, timings


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20, help="timed requests on each side")
    parser.add_argument("--steps", type=int, default=30, help="denoising steps per image")
    parser.add_argument("--guidance", type=float, default=5.0, help="classifier-free guidance scale")
    parser.add_argument("--images", type=int, default=1, help="images per request")
    parser.add_argument("--train-steps", type=int, default=2,
                        help="steps of the model trained at setup (latency does not depend on its weights)")
    parser.add_argument("--var-dir", type=Path, default=None,
                        help="a deployment folder to reuse (default: a new temporary one, set up from scratch)")
    parser.add_argument("--prompt", default="grinning face", help="the prompt of every request")
    parser.add_argument("--cascade-steps", type=int, default=0,
                        help="serve a cascade: an upscaler trained this many steps after the base model")
    parser.add_argument("--edit", choices=("image_to_image", "inpaint", "outpaint"), default=None,
                        help="time this edit (POST /v1/edits) instead of text-to-image")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON report here")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    var_dir = (args.var_dir or Path(tempfile.mkdtemp(prefix="foundry-serve-bench-"))).resolve()
    model_id, key, folders = prepare(var_dir, args.train_steps, args.cascade_steps)
    common = {"prompt": args.prompt, "steps": args.steps, "guidance": args.guidance, "images": args.images,
              "requests": args.requests}
    bare = bare_latencies(folders, **common, edit=args.edit)
    served, timings = served_latencies(var_dir, model_id, key, **common, edit=args.edit)
    bare_median, served_median = statistics.median(bare), statistics.median(served)
    provenance_share = statistics.median(t["provenance_s"] / t["latency_s"] for t in timings)
    render_share = statistics.median(t["render_s"] / t["latency_s"] for t in timings)
    attribution = [t.get("attribution_s", 0.0) for t in timings]
    without_influence = statistics.median(t["latency_s"] - t.get("attribution_s", 0.0) for t in timings) / args.images
    report = {
        "benchmark": "serve",
        "model": {"id": model_id, "folder": str(folders[0]), "upscaler_folder": str(folders[1]) if folders[1] else None},
        "settings": {**common, "threads": 1, "size": "native", "cascade": bool(args.cascade_steps),
                     "edit": args.edit,
                     "machine_cores": os.cpu_count()},
        "bare_pipeline_s_per_image": round(bare_median, 4),
        "served_http_s_per_image": round(served_median, 4),
        "ratio": round(served_median / bare_median, 3),
        "target_ratio": 1.10,
        "ratio_without_influence_scoring": round(without_influence / bare_median, 3),
        "influence_attribution_s_per_request": round(statistics.median(attribution), 4),
        "influence_attribution_share_of_render": round(statistics.median(
            t.get("attribution_s", 0.0) / t["render_s"] for t in timings), 4),
        "influence_target_share": 0.15,
        "provenance_share_of_served": round(provenance_share, 4),
        "render_share_of_served": round(render_share, 4),
        "served_timings_median_s": {key: round(statistics.median(t[key] for t in timings), 4)
                                    for key in ("prepare_s", "render_s", "attribution_s", "provenance_s")},
    }
    if args.out is not None:
        return publish(report, args.out)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
