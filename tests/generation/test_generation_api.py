"""Generations over HTTP (in-process app): answers, attribution, the ledger, images, idempotency,
validation, isolation between tenants and roles, refunds, and all-or-nothing outcomes."""

from __future__ import annotations

import io
import uuid

import pytest
from PIL import Image
from sqlalchemy import func, select, text, update

from foundry.accounts import service as accounts_service
from foundry.blobs import sha256_hex
from foundry.catalog.models import Contributor
from foundry.generation.models import GeneratedImage, Generation
from foundry.ledger import service as ledger_service
from foundry.ledger.models import LedgerEntry
from foundry.models_registry.models import RegisteredModel
from foundry.royalties import service as royalties_service
from foundry.royalties.models import AttributionLine
from provenance import watermark
from provenance.c2pa_manifest import ContentCredentials
from tests.generation.conftest import ADMIN, make_customer


def generate(client, customer, model_id, headers=None, **body):
    payload = {"model_id": str(model_id), "prompt": "red blocks", "seed": 7, "steps": 3, **body}
    return client.post("/v1/generations", json=payload, headers={**customer.headers, **(headers or {})})


def count(sessions, model) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_sync_generation_charges_attributes_and_delivers_signed_images(client, customer, served_model, sessions,
                                                                        blob_store, migrated):
    response = generate(client, customer, served_model, num_images=2)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["mode"], body["seed"], len(body["images"])) == ("succeeded", "sync", 7, 2)
    attribution = body["attribution"]
    # 2 images x 25 cents; 40% pool = 20, split over the three artists' 3/3/2 assets
    assert (attribution["charge"], attribution["pool"], attribution["platform"]) == (50, 20, 30)
    amounts = {c["display_name"]: c["amount"] for c in attribution["contributors"]}
    assert sum(amounts.values()) == 20 and set(amounts) == {"Artist 0", "Artist 1", "Artist 2"}
    assert amounts["Artist 2"] < amounts["Artist 0"]  # two assets against three

    with sessions() as session:
        entries = ledger_service.entries_for(session=session, generation_id=uuid.UUID(body["id"]))
    assert len({e.transaction_id for e in entries}) == 1
    charge = [e for e in entries if e.kind == "charge"]
    assert len(charge) == 1 and charge[0].amount == 50 and charge[0].debit_account == f"customer:{customer.tenant_id}"
    royalties = [e for e in entries if e.kind == "royalty"]
    assert sum(e.amount for e in royalties) == 20 and all(e.contributor_id for e in royalties)

    delivered = client.get(body["images"][0]["url"], headers=customer.headers)
    assert delivered.status_code == 200 and delivered.headers["content-type"] == "image/png"
    assert sha256_hex(delivered.content) == body["images"][0]["delivery_sha256"]
    picture = Image.open(io.BytesIO(delivered.content))
    assert picture.size == (256, 256)
    reading = watermark.extract(picture)
    assert reading is not None and (str(reading.generation_id), reading.index) == (body["id"], 0)
    report = ContentCredentials(migrated.resolved_signing_dir).read(delivered.content)
    assert report.verdict == "trusted"
    assert report.generation["generation_id"] == body["id"]
    assert report.generation["weights_sha256"] and report.generation["snapshot_merkle_root"]
    raw = client.get(body["images"][0]["url"] + "?variant=raw", headers=customer.headers)
    assert Image.open(io.BytesIO(raw.content)).size == (32, 32)

    balances = client.get("/v1/ledger/balances", headers=ADMIN).json()
    assert balances["sums"] == {"USD": 0}
    assert client.get("/v1/me", headers=customer.headers).json()["balance"]["amount"] == -50


def test_same_request_and_seed_give_the_same_bytes(client, customer, served_model):
    first = generate(client, customer, served_model, num_images=2).json()
    second = generate(client, customer, served_model, num_images=2).json()
    other_seed = generate(client, customer, served_model, num_images=2, seed=8).json()
    assert first["id"] != second["id"]
    assert [i["raw_sha256"] for i in first["images"]] == [i["raw_sha256"] for i in second["images"]]
    assert [i["raw_sha256"] for i in first["images"]] != [i["raw_sha256"] for i in other_seed["images"]]


def test_omitted_seed_is_chosen_and_returned(client, customer, served_model):
    body = generate(client, customer, served_model, seed=None).json()
    assert isinstance(body["seed"], int) and body["request"]["seed"] == body["seed"]


def test_idempotency_key_replays_without_a_second_charge_and_refuses_a_different_body(
        client, customer, served_model, sessions):
    key = {"Idempotency-Key": "order-42"}
    first = generate(client, customer, served_model, headers=key)
    again = generate(client, customer, served_model, headers=key)
    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    with sessions() as session:
        charges = session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "charge"))
    assert charges == 1
    conflict = generate(client, customer, served_model, headers=key, prompt="blue blocks")
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "idempotency_key_reused"
    # keys are per tenant: another tenant may use the same key for its own request
    other = make_customer(sessions, "Other Brand")
    assert generate(client, other, served_model, headers=key).json()["id"] != first.json()["id"]


@pytest.mark.parametrize(("change", "field", "code"), [
    ({"num_images": 9}, "body.num_images", "validation_error"),
    ({"num_images": 0}, "body.num_images", "validation_error"),
    ({"steps": "5"}, "body.steps", "validation_error"),
    ({"guidance_scale": 31}, "body.guidance_scale", "validation_error"),
    ({"prompt": ""}, "body.prompt", "validation_error"),
    ({"prompt": " "}, "body.prompt", "validation_error"),
    ({"prompt": "\n\t"}, "body.prompt", "validation_error"),
    ({"prompt": "\u3000\u00a0 "}, "body.prompt", "validation_error"),
    ({"num_images": True}, "body.num_images", "validation_error"),
    ({"seed": -1}, "body.seed", "validation_error"),
    ({"scheduler": "fancy"}, "body.scheduler", "validation_error"),
    ({"surprise": 1}, "body.surprise", "validation_error"),
    ({"width": 48}, "width", "validation_error"),
    ({"height": 64}, "height", "validation_error"),
    ({"scheduler": "euler"}, "scheduler", "validation_error"),
])
def test_invalid_requests_are_422_with_the_field_and_write_nothing(client, customer, served_model, sessions,
                                                                   change, field, code):
    response = generate(client, customer, served_model, **change)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code and field in [item["field"] for item in error["fields"]]
    assert count(sessions, Generation) == 0 and count(sessions, LedgerEntry) == 0


def test_a_blank_negative_prompt_means_none_whatever_whitespace_it_holds(client, customer, served_model):
    none = generate(client, customer, served_model).json()
    for blank in ("", " ", "\n\t "):
        body = generate(client, customer, served_model, negative_prompt=blank).json()
        assert body["request"]["negative_prompt"] == ""
        assert [i["raw_sha256"] for i in body["images"]] == [i["raw_sha256"] for i in none["images"]]
    kept = generate(client, customer, served_model, negative_prompt=" blue ").json()
    assert kept["request"]["negative_prompt"] == " blue "


def test_unknown_model_and_missing_price_are_clear_errors(client, customer, served_model, sessions):
    missing = generate(client, customer, uuid.uuid4())
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    with sessions() as session, session.begin():
        session.execute(text("UPDATE price_rule SET retired_at = created_at"))
    unpriced = generate(client, customer, served_model)
    assert unpriced.status_code == 404 and unpriced.json()["error"]["code"] == "price_not_configured"
    assert count(sessions, Generation) == 0


def test_tenants_and_roles_only_ever_see_their_own(client, customer, served_model, sessions, licensed_catalog):
    mine = generate(client, customer, served_model).json()
    other = make_customer(sessions, "Rival Inc")
    with sessions() as session, session.begin():
        contributor = session.scalars(select(Contributor).where(Contributor.display_name == "Artist 0")).one()
        _, artist_key = accounts_service.create_api_key(session=session, role="artist", name="a0",
                                                        contributor_id=contributor.id)
    artist = {"Authorization": f"Bearer {artist_key}"}

    for path in (f"/v1/generations/{mine['id']}", f"/v1/generations/{mine['id']}/images/0"):
        response = client.get(path, headers=other.headers)
        assert response.status_code == 404 and response.json()["error"]["code"] == "generation_not_found"
        assert client.get(path, headers=artist).status_code == 403
        assert client.get(path, headers=ADMIN).status_code == 200
    assert client.get(f"/v1/generations/{mine['id']}/images/5", headers=customer.headers).status_code == 404
    assert client.get("/v1/generations", headers=other.headers).json()["items"] == []
    assert client.get(f"/v1/generations?tenant_id={customer.tenant_id}", headers=other.headers).status_code == 403
    assert [g["id"] for g in client.get("/v1/generations", headers=customer.headers).json()["items"]] == [mine["id"]]
    assert generate(client, type(customer)(customer.tenant_id, artist_key), served_model).status_code == 403
    for method, path in (("post", "/v1/prices"), ("get", "/v1/ledger/balances"),
                         ("post", f"/v1/generations/{mine['id']}/refund?reason=x"), ("get", "/v1/training-jobs"),
                         ("get", "/v1/catalog/summary")):
        assert getattr(client, method)(path, headers=customer.headers).status_code == 403
        assert getattr(client, method)(path, headers=artist).status_code == 403
    # the artist sees its own royalties, never the customer's charges
    artist_entries = client.get("/v1/me/ledger", headers=artist).json()
    assert artist_entries and all(e["kind"] == "royalty" and e["credit_account"].startswith("contributor:")
                                  for e in artist_entries)
    assert client.get("/v1/me", headers=artist).json()["balance"]["amount"] == sum(e["amount"] for e in artist_entries)
    assert client.get("/v1/me/ledger", headers=other.headers).json() == []


def test_private_models_are_invisible_to_other_tenants(client, customer, served_model, sessions):
    other = make_customer(sessions, "Rival Inc")
    with sessions() as session, session.begin():
        session.execute(update(RegisteredModel).values(owner_tenant_id=customer.tenant_id))
    assert client.get(f"/v1/models/{served_model}", headers=customer.headers).status_code == 200
    hidden = client.get(f"/v1/models/{served_model}", headers=other.headers)
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "model_not_found"
    assert client.get(f"/v1/models/{served_model}/lineage", headers=other.headers).status_code == 404
    assert client.get("/v1/models", headers=other.headers).json() == []
    assert generate(client, other, served_model).status_code == 404
    assert generate(client, customer, served_model).status_code == 200


def test_history_pages_with_a_cursor(client, customer, served_model):
    ids = [generate(client, customer, served_model, seed=seed).json()["id"] for seed in range(3)]
    first = client.get("/v1/generations?limit=2", headers=customer.headers).json()
    second = client.get(f"/v1/generations?limit=2&cursor={first['next_cursor']}", headers=customer.headers).json()
    assert [g["id"] for g in first["items"] + second["items"]] == list(reversed(ids))
    assert second["next_cursor"] is None
    bad = client.get("/v1/generations?cursor=nonsense", headers=customer.headers)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_cursor"


def test_refund_posts_reversing_entries_once_and_the_ledger_refuses_edits(client, customer, served_model, sessions):
    body = generate(client, customer, served_model).json()
    refund = client.post(f"/v1/generations/{body['id']}/refund?reason=customer%20complaint", headers=ADMIN)
    assert refund.status_code == 200 and refund.json()["refunded"] is True
    again = client.post(f"/v1/generations/{body['id']}/refund?reason=twice", headers=ADMIN)
    assert again.status_code == 200
    with sessions() as session:
        entries = ledger_service.entries_for(session=session, generation_id=uuid.UUID(body["id"]))
        balances = ledger_service.trial_balance(session=session)
    originals = [e for e in entries if e.kind != "reversal"]
    reversals = [e for e in entries if e.kind == "reversal"]
    assert len(reversals) == len(originals)
    by_original = {e.reverses_entry_id: e for e in reversals}
    for entry in originals:
        mirror = by_original[entry.id]
        assert (mirror.debit_account, mirror.credit_account, mirror.amount) == (
            entry.credit_account, entry.debit_account, entry.amount)
    assert all(amount == 0 for amount in balances["USD"].values())
    for statement in ("UPDATE ledger_entry SET amount = 1", "DELETE FROM ledger_entry",
                      "UPDATE attribution_line SET amount = 0"):
        with pytest.raises(Exception, match="(?i)append-only|immutable"), sessions() as session, session.begin():
            session.execute(text(statement))


def test_a_failed_outcome_writes_nothing_and_charges_nothing(client, customer, served_model, sessions, blob_store,
                                                             monkeypatch):
    def broken_ledger(**_kwargs):
        raise RuntimeError("ledger unavailable")

    monkeypatch.setattr(royalties_service, "post_generation", broken_ledger)
    response = generate(client, customer, served_model, num_images=2)
    assert response.status_code == 500 and response.json()["error"]["code"] == "generation_failed"
    with sessions() as session:
        generation = session.scalars(select(Generation)).one()
        assert generation.status == "failed" and generation.charge_amount is None
    assert count(sessions, GeneratedImage) == count(sessions, LedgerEntry) == count(sessions, AttributionLine) == 0
    assert list(blob_store.stage_ids()) == []


def test_near_duplicate_guard_records_the_closest_training_image(client, customer, served_model, sessions,
                                                                 migrated):
    body = generate(client, customer, served_model).json()
    image = body["images"][0]
    assert image["nearest_asset_id"] is not None and 0 <= image["nearest_distance"] <= 64
    assert image["near_duplicate"] == (image["nearest_distance"] <= migrated.output_near_duplicate_distance)
    with sessions() as session, session.begin():
        from foundry.catalog.models import Asset
        from provenance.hashing import hamming, phash_from_hex

        hashes = [phash_from_hex(a.phash) for a in session.scalars(select(Asset))]
    assert image["nearest_distance"] == min(hamming(phash_from_hex(image["perceptual_hash"]), h) for h in hashes)


def test_async_requests_queue_and_a_worker_serves_them(client, customer, served_model, migrated, blob_store,
                                                       monkeypatch):
    sent = []
    monkeypatch.setattr("worker.queue.enqueue_generation", lambda generation_id, settings: sent.append(generation_id))
    response = generate(client, customer, served_model, mode="async")
    assert response.status_code == 202 and response.headers["location"].endswith(response.json()["id"])
    queued = response.json()
    assert queued["status"] == "queued" and queued["queue_position"] == 1 and queued["images"] == []
    assert [str(g) for g in sent] == [queued["id"]]
    from worker.tasks import new_generation_runner

    new_generation_runner(migrated)(uuid.UUID(queued["id"]))  # what the worker task does
    done = client.get(f"/v1/generations/{queued['id']}", headers=customer.headers).json()
    assert done["status"] == "succeeded" and done["queue_position"] is None and len(done["images"]) == 1
    # a second delivery of the same task is a no-op
    new_generation_runner(migrated)(uuid.UUID(queued["id"]))
    assert client.get("/v1/me", headers=customer.headers).json()["balance"]["amount"] == -25


def test_large_requests_are_queued_automatically(client, customer, served_model, monkeypatch):
    monkeypatch.setattr("worker.queue.enqueue_generation", lambda *args: None)
    response = generate(client, customer, served_model, num_images=8, steps=40)  # 320 image-steps > 240
    assert response.status_code == 202 and response.json()["mode"] == "async"


def test_rate_limit_per_key(migrated, customer, served_model, sessions):
    from fastapi.testclient import TestClient

    from api.app import create_app

    limited = migrated.model_copy(update={"rate_limit_burst": 3, "rate_limit_per_minute": 1})
    other = make_customer(sessions, "Patient Co")
    with TestClient(create_app(limited)) as client:
        statuses = [client.get("/v1/generations", headers=customer.headers).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        blocked = client.get("/v1/generations", headers=customer.headers)
        assert blocked.json()["error"]["code"] == "rate_limited" and int(blocked.headers["retry-after"]) >= 1
        assert client.get("/v1/generations", headers=other.headers).status_code == 200


def test_generation_without_signing_material_is_503_and_writes_nothing(client, customer, served_model, migrated,
                                                                       sessions):
    for path in migrated.resolved_signing_dir.iterdir():
        path.unlink()
    response = generate(client, customer, served_model)
    assert response.status_code == 503 and response.json()["error"]["code"] == "provenance_not_configured"
    assert count(sessions, Generation) == 0


def test_oversized_json_bodies_are_refused_before_parsing(client, customer, served_model, sessions):
    response = generate(client, customer, served_model, prompt="x" * (1024 * 1024 + 10))
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    too_long = generate(client, customer, served_model, prompt="x" * 2001)
    assert too_long.status_code == 422 and too_long.json()["error"]["fields"][0]["field"] == "body.prompt"
    assert count(sessions, Generation) == 0
