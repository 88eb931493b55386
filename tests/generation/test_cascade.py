"""A super-resolution cascade, end to end: an upscaler trained after a base model on its own
snapshot, served as one model that draws at the base's size and enlarges, with both stages in the
signed provenance and both stages' contributors in the pool."""

from __future__ import annotations

import io
import uuid
from collections import Counter

import pytest
from PIL import Image

from foundry.attribution import service as attribution_service
from foundry.datasets import service as dataset_service
from foundry.datasets.schemas import SnapshotFilters
from foundry.generation.editing import EditPlan, changed_share, edit_canvas
from foundry.generation.models import Generation
from foundry.ledger import service as ledger_service
from foundry.models_registry import service as registry_service
from foundry.pricing import service as pricing_service
from provenance.influence import InfluenceConfig
from tests.generation.conftest import ADMIN
from tests.support import images
from worker import jobs as job_runner
from worker.attribution import audit_generation, build_index

pytestmark = pytest.mark.slow

TINY_UPSCALER = {"unet_block_out_channels": [16, 32], "unet_down_block_types": ["DownBlock2D", "DownBlock2D"],
                 "unet_norm_num_groups": 8}


def upscaler_settings(**overrides) -> dict:
    return {"model_shape": TINY_UPSCALER, "resolution": 64, "upscale_from": 32, "train_crop": 32,
            "train_batch_size": 4, "max_train_steps": 2, "lr_warmup_steps": 0, "checkpoint_every": 0,
            **overrides}


def second_stage_snapshot(sessions):
    """The upscaler learns from two of the catalog's images only: its pool layer differs from the base's."""
    with sessions() as session, session.begin():
        return dataset_service.create_snapshot(session=session, name="upscaler", use="base_training",
                                               filters=SnapshotFilters(limit=2), created_by="test")


def train_upscaler(client, migrated, snapshot, base_model_id) -> str:
    """An upscaler trained over HTTP after ``base_model_id`` on ``snapshot``: its model id."""
    created = client.post("/v1/training-jobs", headers=ADMIN, json={
        "name": "tiny-upscaler", "recipe": "upscaler", "snapshot_id": str(snapshot.id),
        "base_model_id": str(base_model_id), "settings": upscaler_settings()})
    assert created.status_code == 202, created.text
    job_id = uuid.UUID(created.json()["id"])
    assert job_runner.run_job(migrated, job_id, worker="test") == "succeeded"
    return client.get(f"/v1/training-jobs/{job_id}", headers=ADMIN).json()["result_model_id"]


def test_an_upscaler_is_trained_after_its_base_and_served_as_a_cascade(client, customer, served_model, migrated,
                                                                       sessions, base_snapshot):
    snapshot = second_stage_snapshot(sessions)
    upscaler_id = train_upscaler(client, migrated, snapshot, served_model)
    model = client.get(f"/v1/models/{upscaler_id}", headers=customer.headers).json()
    assert (model["kind"], model["parent_id"], model["licensed_only"]) == ("upscaler", str(served_model), True)
    with sessions() as session:
        registered = registry_service.get_model(session=session, model_id=uuid.UUID(upscaler_id))
        assert attribution_service.active_index(session=session, model=registered) is None  # influence: base stage
        assert "cascade.json" in registered.files

    with sessions() as session, session.begin():  # a price of its own: pool 4,000 (half to each stage's layer)
        pricing_service.set_price(session=session, unit_price=10_000, currency="USD", pool_share_bps=4000,
                                  finetune_share_bps=5000, model_id=uuid.UUID(upscaler_id), created_by="test")
    body = client.post("/v1/generations", headers=customer.headers,
                       json={"model_id": upscaler_id, "prompt": "red blocks", "seed": 3, "steps": 3}).json()
    assert body["status"] == "succeeded", body
    image = body["images"][0]
    assert (image["width"], image["height"]) == (64, 64) and image["delivery_width"] == 256
    delivered = client.get(image["url"], headers=customer.headers).content
    assert Image.open(io.BytesIO(delivered)).size == (256, 256)

    report = client.post("/v1/provenance/verify", headers=customer.headers,
                         files={"image": ("out.png", delivered, "image/png")}).json()
    assert report["found"] and report["model"]["id"] == upscaler_id
    assert [step["model_id"] for step in report["lineage"]] == [upscaler_id, str(served_model)]
    with sessions() as session:
        counts = {s: Counter(e.contributor_id for e in dataset_service.snapshot_entries(session=session, snapshot_id=s))
                  for s in (snapshot.id, base_snapshot.id)}
    paid = Counter()
    for line in body["attribution"]["contributors"]:
        paid[uuid.UUID(line["contributor_id"])] += line["amount"]
    assert sum(paid.values()) == body["attribution"]["pool"] == 4000
    base_counts, stage_counts = counts[base_snapshot.id], counts[snapshot.id]
    for contributor in base_counts | stage_counts:  # half over each stage's snapshot, to the unit
        expected = 2000 * base_counts[contributor] / base_counts.total() + 2000 * stage_counts[contributor] / 2
        assert abs(paid[contributor] - expected) <= 1, (contributor, paid[contributor], expected)

    again = client.post("/v1/generations", headers=customer.headers,
                        json={"model_id": upscaler_id, "prompt": "red blocks", "seed": 3, "steps": 3}).json()
    assert again["images"][0]["raw_sha256"] == image["raw_sha256"]  # both stages are seeded per image

    # an inpainting edit on the cascade: the base stage repaints the mask, the upscaler enlarges, and the
    # delivered pixels keep the input wherever the mask does
    source = images.pattern_png(4242, size=64)
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))
    edited = client.post("/v1/edits", headers=customer.headers, files={
        "image": ("in.png", source, "image/png"), "mask": ("mask.png", images.encode(mask), "image/png")},
        data={"model_id": upscaler_id, "prompt": "red blocks", "operation": "inpaint", "seed": "3", "steps": "3"})
    assert edited.status_code == 200, edited.text
    raw = Image.open(io.BytesIO(client.get(f"{edited.json()['images'][0]['url']}?variant=raw",
                                           headers=customer.headers).content)).convert("RGB")
    canvas, _ = edit_canvas(EditPlan("inpaint", 1.0), Image.open(io.BytesIO(source)), mask, 64)
    assert raw.size == (64, 64) and raw.crop((32, 0, 64, 64)).tobytes() == canvas.crop((32, 0, 64, 64)).tobytes()
    assert changed_share(raw.crop((0, 0, 32, 64)), canvas.crop((0, 0, 32, 64))) > 0.2


def test_an_upscaler_must_follow_a_licensed_base_model(client, served_model, sessions, base_snapshot, blob_store,
                                                       tmp_path):
    folder = tmp_path / "external"
    folder.mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "IFPipeline"}')
    with sessions() as session, session.begin():
        external = registry_service.register_external(session=session, blob_store=blob_store, folder=folder,
                                                      name="elsewhere").id
    refused = client.post("/v1/training-jobs", headers=ADMIN, json={
        "name": "bad", "recipe": "upscaler", "snapshot_id": str(base_snapshot.id), "base_model_id": str(external),
        "settings": upscaler_settings()})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_base_model"
    wrong_size = client.post("/v1/training-jobs", headers=ADMIN, json={
        "name": "bad", "recipe": "upscaler", "snapshot_id": str(base_snapshot.id), "base_model_id": str(served_model),
        "settings": upscaler_settings(upscale_from=48)})
    assert wrong_size.status_code == 422


def test_a_cascade_pays_influence_through_the_stage_that_drew_it(client, customer, served_model, migrated, sessions,
                                                                 blob_store, base_snapshot, tmp_path, toy_outputs_count):
    index = build_index(sessions=sessions, blob_store=blob_store, model_id=served_model,
                        cache_dir=tmp_path / "models", config=InfluenceConfig(timesteps=(200, 600), projection_dim=256, normalisation="self", payment_timesteps=None),
                        built_by="test")
    snapshot = second_stage_snapshot(sessions)
    upscaler_id = train_upscaler(client, migrated, snapshot, served_model)
    with sessions() as session:
        upscaler = registry_service.get_model(session=session, model_id=uuid.UUID(upscaler_id))
        assert attribution_service.scoring_index(session=session, model=upscaler).id == index.id

    body = client.post("/v1/generations", headers=customer.headers,
                       json={"model_id": upscaler_id, "prompt": "red blocks", "seed": 5, "steps": 3}).json()
    assert body["status"] == "succeeded" and body["attribution"]["method"] == "blend", body
    generation_id = uuid.UUID(body["id"])
    with sessions() as session:
        base_assets = {e.asset_id for e in dataset_service.snapshot_entries(session=session,
                                                                          snapshot_id=base_snapshot.id)}
        influence = [e for e in ledger_service.entries_for(session=session, generation_id=generation_id)
                     if e.kind == "royalty" and e.method == "influence"]
        recorded = session.get(Generation, generation_id).attribution["parameters"]["influence"]
    assert influence and {e.asset_id for e in influence} <= base_assets  # the base's images, scored by the base
    assert recorded["index_id"] == str(index.id)
    audit = audit_generation(sessions=sessions, blob_store=blob_store, generation_id=generation_id,
                             cache_dir=tmp_path / "models")
    assert audit.method == "blend" and audit.matches
