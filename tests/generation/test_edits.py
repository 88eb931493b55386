"""Image edits over HTTP: inpainting, outpainting, image-to-image and variations on the tiny base model,
with their inputs checked before anything is written, kept only for their retention, credited when they
are catalog images, and named as C2PA ingredients of every output."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from api.app import create_app
from foundry.blobs import sha256_hex
from foundry.db import utcnow
from foundry.generation import service as generation_service
from foundry.generation.editing import EditPlan, Padding, changed_share, edit_canvas
from foundry.generation.models import EditInput, Generation
from foundry.ledger.models import LedgerEntry
from foundry.moderation import service as moderation_service
from provenance.c2pa_manifest import ContentCredentials
from tests.generation.conftest import ADMIN, make_customer
from tests.support import images

NATIVE = 32  # the tiny base model's size


def photo(seed: int = 4242, size: int = 64) -> bytes:
    """An image that is not in the test catalog."""
    return images.pattern_png(seed, size=size)


def left_half_mask(size: int = 64) -> bytes:
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, (0, 0, size // 2, size))
    return images.encode(mask)


def edit(client, customer, model_id, *, image: bytes, mask: bytes | None = None, headers=None, **fields):
    data = {"model_id": str(model_id), "prompt": "red blocks", "seed": "7", "steps": "4", **{
        name: str(value) for name, value in fields.items()}}
    files = {"image": ("input.png", image, "image/png"),
             **({"mask": ("mask.png", mask, "image/png")} if mask is not None else {})}
    return client.post("/v1/edits", data=data, files=files, headers={**customer.headers, **(headers or {})})


def raw_image(client, customer, body, index: int = 0) -> Image.Image:
    answer = client.get(f"{body['images'][index]['url']}?variant=raw", headers=customer.headers)
    assert answer.status_code == 200
    return Image.open(io.BytesIO(answer.content)).convert("RGB")


def count(sessions, model) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_inpainting_repaints_only_the_mask_and_names_its_inputs_as_ingredients(client, customer, served_model,
                                                                                 sessions, migrated):
    image, mask = photo(), left_half_mask()
    answer = edit(client, customer, served_model, image=image, mask=mask, operation="inpaint")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "succeeded" and body["request"]["edit"]["operation"] == "inpaint"
    assert body["request"]["edit"]["strength"] == 1.0 and body["price"]["charge"] == 25
    inputs = {row["role"]: row for row in body["inputs"]}
    assert inputs["init"]["relationship"] == "parentOf" and inputs["init"]["sha256"] == sha256_hex(image)
    assert inputs["mask"]["relationship"] == "componentOf" and inputs["mask"]["sha256"] == sha256_hex(mask)
    assert inputs["init"]["expires_at"] is not None and inputs["init"]["catalog_asset_id"] is None

    # the kept half is the input's own pixels, exactly; the masked half was drawn by the model
    canvas, _canvas_mask = edit_canvas(EditPlan("inpaint", 1.0), Image.open(io.BytesIO(image)),
                                      Image.open(io.BytesIO(mask)), NATIVE)
    output = raw_image(client, customer, body)
    assert output.size == (NATIVE, NATIVE)
    right = (NATIVE // 2, 0, NATIVE, NATIVE)
    assert output.crop(right).tobytes() == canvas.crop(right).tobytes()
    assert changed_share(output.crop((0, 0, NATIVE // 2, NATIVE)), canvas.crop((0, 0, NATIVE // 2, NATIVE))) > 0.2

    # every delivered image names the upload and the mask in its signed manifest, and verification says so
    delivered = client.get(body["images"][0]["url"], headers=customer.headers).content
    report = ContentCredentials(migrated.resolved_signing_dir).read(delivered)
    assert report.verdict == "trusted", report.status_codes
    assert [(i["relationship"], i["sha256"]) for i in report.ingredients] == [
        ("parentOf", sha256_hex(image)), ("componentOf", sha256_hex(mask))]
    assert report.generation["edit"]["operation"] == "inpaint"
    verified = client.post("/v1/provenance/verify", files={"image": ("x.png", delivered, "image/png")},
                           headers=customer.headers)
    assert verified.status_code == 200, verified.text
    assert {i["sha256"] for i in verified.json()["manifest"]["ingredients"]} == {sha256_hex(image), sha256_hex(mask)}
    # charged and attributed like text-to-image
    with sessions() as session:
        entries = session.scalars(select(LedgerEntry).where(LedgerEntry.generation_id == uuid.UUID(body["id"]))).all()
    assert sum(e.amount for e in entries if e.kind == "charge") == 25
    assert sum(e.amount for e in entries if e.kind == "royalty") == body["attribution"]["pool"] == 10


def test_outpainting_extends_the_image_and_image_to_image_is_deterministic(client, customer, served_model):
    image = photo(size=64)
    answer = edit(client, customer, served_model, image=image, operation="outpaint", pad_right=64)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["request"]["edit"]["padding"] == {"left": 0, "top": 0, "right": 64, "bottom": 0}
    plan = EditPlan("outpaint", 1.0, Padding(right=64))
    canvas, canvas_mask = edit_canvas(plan, Image.open(io.BytesIO(image)), None, NATIVE)
    output = raw_image(client, customer, body)
    # the input keeps the left half of the 128 x 64 extended picture, on the square canvas's middle rows
    kept = (0, NATIVE // 4, NATIVE // 2, NATIVE * 3 // 4)
    assert canvas_mask.crop(kept).getextrema() == (0, 0)
    assert output.crop(kept).tobytes() == canvas.crop(kept).tobytes()
    grown = (NATIVE // 2, NATIVE // 4, NATIVE, NATIVE * 3 // 4)
    assert changed_share(output.crop(grown), canvas.crop(grown)) > 0.2

    first = edit(client, customer, served_model, image=image, operation="image_to_image", strength="0.5")
    again = edit(client, customer, served_model, image=image, operation="image_to_image", strength="0.5")
    assert first.status_code == again.status_code == 200, first.text
    assert first.json()["id"] != again.json()["id"]
    assert first.json()["images"][0]["raw_sha256"] == again.json()["images"][0]["raw_sha256"]
    assert first.json()["inputs"][0]["sha256"] == sha256_hex(image) and len(first.json()["inputs"]) == 1


def test_variations_start_from_the_tenants_own_output_only(client, customer, served_model, sessions):
    made = client.post("/v1/generations", json={"model_id": str(served_model), "prompt": "red blocks", "seed": 3,
                                                "steps": 3}, headers=customer.headers)
    assert made.status_code == 200, made.text
    source = made.json()
    answer = client.post("/v1/variations", json={"generation_id": source["id"], "image_index": 0, "steps": 4,
                                                 "seed": 9}, headers=customer.headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["prompt"] == "red blocks" and body["model_id"] == str(served_model)
    assert body["request"]["edit"] == {"operation": "variation", "strength": 0.5,
                                       "padding": {"left": 0, "top": 0, "right": 0, "bottom": 0}}
    [init] = body["inputs"]
    assert (init["source_generation_id"], init["source_image_index"]) == (source["id"], 0)
    assert init["sha256"] == source["images"][0]["raw_sha256"] and init["expires_at"] is None

    other = make_customer(sessions, "Rival")
    hidden = client.post("/v1/variations", json={"generation_id": source["id"]}, headers=other.headers)
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "generation_not_found"
    missing = client.post("/v1/variations", json={"generation_id": source["id"], "image_index": 5},
                          headers=customer.headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "image_not_found"


def test_bad_edits_are_refused_before_anything_is_written(client, customer, served_model, sessions, blob_store):
    generations, inputs, blobs = count(sessions, Generation), count(sessions, EditInput), set(blob_store.iter_keys())
    cases = [
        ({"image": b"\x89PNG\r\n\x1a\nnot really", "operation": "image_to_image"}, 422, "edit_input_rejected",
         "image_corrupt"),
        ({"image": images.png_header_only(60_000, 60_000), "operation": "image_to_image"}, 422, "edit_input_rejected",
         "decompression_bomb"),
        ({"image": photo(), "mask": left_half_mask(48), "operation": "inpaint"}, 422, "validation_error", None),
        ({"image": photo(), "operation": "inpaint"}, 422, "validation_error", None),
        ({"image": photo(), "mask": left_half_mask(), "operation": "image_to_image"}, 422, "validation_error", None),
        ({"image": photo(), "operation": "outpaint"}, 422, "validation_error", None),
        ({"image": photo(), "operation": "image_to_image", "strength": "0"}, 422, "validation_error", None),
        ({"image": photo(), "operation": "sharpen"}, 422, "validation_error", None),
        ({"image": photo(), "operation": "image_to_image", "colour": "red"}, 422, "validation_error", None),
    ]
    for fields, status, code, reason in cases:
        answer = edit(client, customer, served_model, **fields)
        assert answer.status_code == status, (fields.get("operation"), answer.text)
        assert answer.json()["error"]["code"] == code, answer.text
        if reason:
            assert answer.json()["error"]["details"]["reason"] == reason
    # the caller is checked before the upload is read: no key, or an admin key, never reaches the form
    anonymous = client.post("/v1/edits", files={"image": ("a.png", photo(), "image/png")})
    assert anonymous.status_code == 401
    admin = client.post("/v1/edits", files={"image": ("a.png", photo(), "image/png")}, headers=ADMIN)
    assert admin.status_code == 403
    # a refused prompt: counted, nothing written, nothing charged, the staged upload discarded
    with sessions() as session, session.begin():
        moderation_service.add_rule(session=session, kind="term", phrase="forbidden mascot", created_by="test")
    refused = edit(client, customer, served_model, image=photo(77), operation="image_to_image",
                   prompt="a forbidden mascot")
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "prompt_refused"
    assert (count(sessions, Generation), count(sessions, EditInput)) == (generations, inputs)
    assert set(blob_store.iter_keys()) == blobs and not blob_store.stage_ids()


def test_an_edit_of_a_catalog_image_credits_its_contributor_or_is_refused(client, customer, served_model,
                                                                         sessions, migrated):
    catalog_image = images.pattern_png(500, size=48)  # img0 of the test catalog, by Artist 0
    answer = edit(client, customer, served_model, image=catalog_image, operation="image_to_image")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["inputs"][0]["catalog_asset_id"] is not None and body["inputs"][0]["catalog_distance"] == 0
    credited = [line for line in body["attribution"]["contributors"] if line["method"] == "edit_source"]
    assert [(line["display_name"], line["share"]) for line in credited] == [("Artist 0", "3/10")]
    assert sum(line["amount"] for line in body["attribution"]["contributors"]) == body["attribution"]["pool"]

    refusing = migrated.model_copy(update={"edit_catalog_inputs": "refuse"})
    with TestClient(create_app(refusing)) as strict:
        before = count(sessions, Generation)
        refused = edit(strict, customer, served_model, image=catalog_image, operation="image_to_image")
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "edit_input_in_catalog"
        assert count(sessions, Generation) == before


def test_uploaded_inputs_are_purged_when_their_retention_ends(client, customer, served_model, sessions, blob_store):
    image, mask = photo(99), left_half_mask()
    first = edit(client, customer, served_model, image=image, mask=mask, operation="inpaint").json()
    made = client.post("/v1/generations", json={"model_id": str(served_model), "prompt": "red blocks", "seed": 1,
                                                "steps": 3}, headers=customer.headers).json()
    variation = client.post("/v1/variations", json={"generation_id": made["id"], "steps": 3},
                            headers=customer.headers).json()
    later = utcnow() + timedelta(days=31)
    with sessions() as session, session.begin():
        assert generation_service.purge_edit_inputs(session=session, blob_store=blob_store, now=later) == 2
    assert not blob_store.exists(sha256_hex(image)) and not blob_store.exists(sha256_hex(mask))
    assert blob_store.exists(made["images"][0]["raw_sha256"])  # a variation's input is the output itself: kept
    rows = {row["role"]: row for row in client.get(f"/v1/generations/{first['id']}", headers=customer.headers)
            .json()["inputs"]}
    assert rows["init"]["purged_at"] is not None and rows["init"]["sha256"] == sha256_hex(image)
    assert client.get(f"/v1/generations/{variation['id']}", headers=customer.headers).json()["inputs"][0][
        "purged_at"] is None
    with sessions() as session, session.begin():
        assert generation_service.purge_edit_inputs(session=session, blob_store=blob_store, now=later) == 0


def test_a_queued_edit_whose_input_was_purged_fails_uncharged(client, customer, served_model, sessions, blob_store,
                                                            migrated):
    answer = edit(client, customer, served_model, image=photo(5), operation="image_to_image", mode="async")
    assert answer.status_code == 202, answer.text
    with sessions() as session, session.begin():
        generation_service.purge_edit_inputs(session=session, blob_store=blob_store, now=utcnow() + timedelta(days=60))
    from foundry.usecases.generation import GenerationRunner
    from training.inference import PipelineCache

    runner = GenerationRunner(migrated, blob_store=blob_store, pipelines=PipelineCache())
    failed = runner(uuid.UUID(answer.json()["id"]))
    assert failed.status == "failed" and failed.error_code == "edit_input_purged" and failed.charge_amount is None


def test_an_idempotency_key_replays_the_same_edit_and_refuses_another_image(client, customer, served_model, sessions):
    key = {"Idempotency-Key": "edit-1"}
    first = edit(client, customer, served_model, image=photo(11), operation="image_to_image", headers=key)
    again = edit(client, customer, served_model, image=photo(11), operation="image_to_image", headers=key)
    assert first.status_code == again.status_code == 200 and first.json()["id"] == again.json()["id"]
    other = edit(client, customer, served_model, image=photo(12), operation="image_to_image", headers=key)
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "charge")) == 1
