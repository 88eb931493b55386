"""Custom models, self-served: a tenant's brand assets (by tag or id) -> snapshot -> a LoRA of a shared
base on the training queue -> a private model; progress, isolation, cancel, delete."""

from __future__ import annotations

import uuid

import pytest

from foundry.datasets import service as dataset_service
from foundry.training_jobs.models import TrainingJob
from tests.generation.conftest import ADMIN, make_customer
from tests.support import images
from worker import jobs as job_runner


def upload_brand(client, customer, count: int, tags: str) -> list[str]:
    answer = client.post("/v1/brand-assets", headers=customer.headers,
                         data={"attest": "true", "attested_by": "Brand manager", "tags": tags},
                         files=[("files", (f"sneaker-{n}.png", images.pattern_png(700 + 10 * len(tags) + n, size=48),
                                           "image/png")) for n in range(count)])
    assert answer.status_code == 201, answer.text
    return [a["id"] for a in client.get("/v1/brand-assets", headers=customer.headers).json()]


def create(client, customer, served_model, **body):
    return client.post("/v1/custom-models", headers=customer.headers, json={
        "name": "sneakers", "base_model_id": str(served_model), "brand_assets": {"tags": ["sneakers"]},
        "steps": 2, **body})


@pytest.mark.slow
def test_a_customer_trains_a_custom_model_from_its_brand_assets(client, customer, served_model, migrated, sessions):
    upload_brand(client, customer, 3, "sneakers")
    created = create(client, customer, served_model, trigger_word="snekko")
    assert created.status_code == 202, created.text
    custom = created.json()
    assert custom["trigger_word"] == "snekko"
    with sessions() as session:
        recipe = session.get(TrainingJob, uuid.UUID(custom["id"])).recipe
        # a named trigger is learnt as its own embedding row, among catalog words (pivotal tuning)
        assert recipe["brand_trigger"] == "snekko" and recipe["brand_trigger_context"] is True
        assert recipe["trigger_embedding_lr"] > 0
    assert (custom["status"], custom["kind"], custom["progress"], custom["model_id"]) == ("queued", "lora", 0.0, None)
    with sessions() as session:
        entries = dataset_service.snapshot_entries(session=session, snapshot_id=uuid.UUID(custom["snapshot_id"]))
        assert len(entries) == 3 and all(e.caption.startswith("sneaker") for e in entries)

    assert job_runner.run_job(migrated, uuid.UUID(custom["id"]), worker="test") == "succeeded"
    done = client.get(f"/v1/custom-models/{custom['id']}", headers=customer.headers).json()
    assert done["status"] == "succeeded" and done["progress"] == 1.0 and done["model_id"]
    model = client.get(f"/v1/models/{done['model_id']}", headers=customer.headers).json()
    assert model["owner_tenant_id"] == str(customer.tenant_id) and model["parent_id"] == str(served_model)
    made = client.post("/v1/generations", headers=customer.headers,
                       json={"model_id": done["model_id"], "prompt": "sneaker", "steps": 2})
    assert made.status_code == 200, made.text
    # the base model's contributors keep their layer; the tenant's own brand assets are never paid
    paid = {line["contributor_id"] for line in made.json()["attribution"]["contributors"]}
    with sessions() as session:
        brand = {str(e.contributor_id) for e in entries}
    assert paid and not paid & brand

    rival = make_customer(sessions, "Rival")
    assert client.get(f"/v1/custom-models/{custom['id']}", headers=rival.headers).status_code == 404
    assert client.delete(f"/v1/custom-models/{custom['id']}", headers=rival.headers).status_code == 404
    assert client.get("/v1/custom-models", headers=rival.headers).json() == []
    assert [c["id"] for c in client.get("/v1/custom-models", headers=customer.headers).json()] == [custom["id"]]

    deleted = client.delete(f"/v1/custom-models/{custom['id']}", headers=customer.headers)
    assert deleted.status_code == 200 and deleted.json()["deleted"]
    refused = client.post("/v1/generations", headers=customer.headers,
                          json={"model_id": done["model_id"], "prompt": "sneaker", "steps": 2})
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "model_withdrawn")


@pytest.mark.slow
def test_catalog_images_mixed_into_a_custom_model_are_paid_in_its_layer(client, customer, served_model, migrated,
                                                                          sessions):
    from foundry.models_registry import service as registry_service
    from foundry.royalties import service as royalties_service

    upload_brand(client, customer, 3, "sneakers")
    created = create(client, customer, served_model, catalog={"limit": 4})
    assert created.status_code == 202, created.text
    assert (created.json()["brand_images"], created.json()["catalog_images"]) == (3, 4)
    assert create(client, customer, served_model, catalog={"limit": 0}).status_code == 422
    assert create(client, customer, served_model, catalog={"tags": ["no-such-tag"]}).json()["error"]["code"] == \
        "invalid_filters"

    assert job_runner.run_job(migrated, uuid.UUID(created.json()["id"]), worker="test") == "succeeded"
    done = client.get(f"/v1/custom-models/{created.json()['id']}", headers=customer.headers).json()
    with sessions() as session:
        entries = dataset_service.snapshot_entries(session=session, snapshot_id=uuid.UUID(done["snapshot_id"]))
        brand_ids = dataset_service.brand_asset_ids(session=session, snapshot_id=uuid.UUID(done["snapshot_id"]))
        mixed = {e.contributor_id for e in entries if e.asset_id not in brand_ids}
        brand = {e.contributor_id for e in entries if e.asset_id in brand_ids}
        model = registry_service.get_model(session=session, model_id=uuid.UUID(done["model_id"]))
        _, finetune = royalties_service.layers_of(session=session, model=model)
    assert finetune is not None and set(finetune.asset_counts) == mixed and not mixed & brand
    assert sum(finetune.asset_counts.values()) == 4  # the catalog images, not the tenant's own
    made = client.post("/v1/generations", headers=customer.headers,
                       json={"model_id": done["model_id"], "prompt": "sneaker", "steps": 2})
    paid = {line["contributor_id"] for line in made.json()["attribution"]["contributors"]}
    assert {str(c) for c in mixed} <= paid and not paid & {str(c) for c in brand}


def test_custom_models_are_checked_before_anything_is_queued(client, customer, served_model, sessions):
    upload_brand(client, customer, 2, "sneakers")
    nothing = create(client, customer, served_model, brand_assets={"tags": ["boots"]})
    assert (nothing.status_code, nothing.json()["error"]["code"]) == (422, "snapshot_empty")
    assert create(client, customer, served_model, brand_assets={}).status_code == 422
    assert create(client, customer, served_model, base_model_id=str(uuid.uuid4())).status_code == 404
    assert create(client, customer, served_model, steps=0).status_code == 422
    for bad in ("Sneaker", "two words", "x", "a" * 41):
        assert create(client, customer, served_model, trigger_word=bad).status_code == 422, bad
    assert client.post("/v1/custom-models", headers=ADMIN, json={
        "name": "x", "base_model_id": str(served_model), "brand_assets": {"tags": ["sneakers"]}}).status_code == 422
    with sessions() as session:
        assert session.query(TrainingJob).count() == 0

    assert client.post("/v1/moderation/rules", headers=ADMIN, json={"kind": "trademark", "phrase": "sneaker 1"}
                       ).status_code == 201
    refused = create(client, customer, served_model)
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "prompt_refused")
    assert refused.json()["error"]["details"]["field"] == "caption"
    assert client.post("/v1/moderation/rules", headers=ADMIN, json={"kind": "trademark", "phrase": "nikey"}
                       ).status_code == 201
    refused = create(client, customer, served_model, trigger_word="nikey")
    assert (refused.status_code, refused.json()["error"]["details"]["field"]) == (422, "trigger_word")
    with sessions() as session:
        assert session.query(TrainingJob).count() == 0

    by_id = create(client, customer, served_model, brand_assets={"asset_ids": upload_brand(client, customer, 1, "x")[:1]})
    assert by_id.status_code == 202, by_id.text
    cancelled = client.post(f"/v1/custom-models/{by_id.json()['id']}/cancel", headers=customer.headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


def test_training_is_charged_once_and_the_untrained_part_refunded(client, customer, served_model, sessions):
    from foundry.ledger import service as ledger_service
    from foundry.training_jobs import service as job_service

    price = client.post("/v1/prices", headers=ADMIN, json={
        "model_id": str(served_model), "unit_price": 25, "currency": "USD", "pool_share_bps": 4000,
        "training_step_price": 3})
    assert price.status_code == 201 and price.json()["training_step_price"] == 3
    upload_brand(client, customer, 2, "sneakers")
    headers = {**customer.headers, "Idempotency-Key": "sneakers-v1"}
    body = {"name": "sneakers", "base_model_id": str(served_model), "brand_assets": {"tags": ["sneakers"]},
            "steps": 10}

    def balance() -> int:
        return client.get("/v1/me", headers=customer.headers).json()["balance"]["amount"]

    first = client.post("/v1/custom-models", headers=headers, json=body)
    assert first.status_code == 202, first.text
    assert first.json()["charge"] == {"amount": 30, "currency": "USD", "step_price": 3,
                                      "price_rule_id": price.json()["id"]}
    again = client.post("/v1/custom-models", headers=headers, json=body)
    assert again.json()["id"] == first.json()["id"] and balance() == -30  # charged once
    other = client.post("/v1/custom-models", headers=headers, json={**body, "steps": 11})
    assert (other.status_code, other.json()["error"]["code"]) == (409, "idempotency_key_reused")

    cancelled = client.post(f"/v1/custom-models/{first.json()['id']}/cancel", headers=customer.headers)
    assert cancelled.json()["status"] == "cancelled" and balance() == 0  # nothing trained: all of it back

    second = client.post("/v1/custom-models", headers=customer.headers, json=body).json()
    with sessions() as session, session.begin():  # trains 4 of its 10 steps, then fails
        job_service.record_progress(session=session, job_id=uuid.UUID(second["id"]), step=4, total=10, loss=0.1,
                                    images_per_s=1.0, eta_s=1.0)
        job_service.fail_job(session=session, job_id=uuid.UUID(second["id"]), code="training_error", message="boom")
        job_service.fail_job(session=session, job_id=uuid.UUID(second["id"]), code="training_error", message="again")
    assert balance() == -12  # 4 steps paid, 6 refunded, once
    with sessions() as session:
        entries = ledger_service.entries_for(session=session, tenant_id=customer.tenant_id)
        training = [(e.kind, e.amount) for e in entries if e.training_job_id == uuid.UUID(second["id"])]
        assert sorted(training) == [("charge", 30), ("reversal", 18)]
        assert sum(ledger_service.trial_balance(session=session)["USD"].values()) == 0


def test_a_job_under_a_minutes_budget_is_never_charged_by_the_step():
    """A budget may plan fewer steps than the job asks for: billing by the step would charge untrained steps."""
    from foundry.training_jobs.service import charge_training

    job = TrainingJob(recipe={"kind": "lora", "max_train_steps": 100, "max_train_minutes": 5.0}, total_steps=100)
    with pytest.raises(ValueError, match="minutes budget"):
        charge_training(session=None, job=job, step_price=7, currency="USD", price_rule_id=uuid.uuid4())
    assert not job.details  # nothing recorded
