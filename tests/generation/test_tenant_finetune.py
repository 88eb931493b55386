"""A tenant's private fine-tune, end to end: an admin trains a LoRA for the tenant (over HTTP and with
``foundry train start --tenant``), the tenant generates with it, and nobody else sees it."""

from __future__ import annotations

import json
import uuid

import pytest

from foundry.models_registry.models import RegisteredModel
from foundry.webhooks import service as webhook_service
from tests.generation.conftest import ADMIN, make_customer
from tests.test_cli_and_migrations import cli
from worker import jobs as job_runner

pytestmark = pytest.mark.slow


def tiny_lora_settings() -> dict:
    return {"resolution": 32, "train_batch_size": 4, "max_train_steps": 2, "learning_rate": 1e-2,
            "checkpoint_every": 0, "validation_every": 0, "validation_prompts": ["red blocks"],
            "validation_inference_steps": 2, "lora_rank": 4, "lora_alpha": 4}


def tenant_snapshot(client, tenant_id) -> str:
    created = client.post("/v1/datasets", headers=ADMIN, json={
        "name": "acme fine-tune", "use": "customer_finetune", "filters": {"tenant_id": str(tenant_id)}})
    assert created.status_code == 201, created.text
    return created.json()["id"]


def test_a_tenant_lora_trained_over_http_generates_for_its_tenant_only(client, customer, served_model, migrated,
                                                                      sessions):
    snapshot_id = tenant_snapshot(client, customer.tenant_id)
    with sessions() as session, session.begin():  # the tenant follows its custom model through its webhooks
        webhook_service.create_endpoint(session=session, tenant_id=customer.tenant_id, events=["custom_model.succeeded"],
                                        url="https://hooks.example.com/models", created_by="test", allow_private=False)
    created = client.post("/v1/training-jobs", headers=ADMIN, json={
        "name": "acme-lora", "recipe": "lora", "snapshot_id": snapshot_id, "base_model_id": str(served_model),
        "tenant_id": str(customer.tenant_id), "settings": {**tiny_lora_settings(), "serving_guidance_scale": 6.5}})
    assert created.status_code == 202, created.text
    assert created.json()["owner_tenant_id"] == str(customer.tenant_id)
    job_id = uuid.UUID(created.json()["id"])
    assert job_runner.run_job(migrated, job_id, worker="test") == "succeeded"
    lora_id = client.get(f"/v1/training-jobs/{job_id}", headers=ADMIN).json()["result_model_id"]
    with sessions() as session:
        [event] = webhook_service.list_deliveries(session=session, tenant_id=customer.tenant_id)
    assert event.event_type == "custom_model.succeeded" and event.payload["data"]["model_id"] == lora_id

    model = client.get(f"/v1/models/{lora_id}", headers=customer.headers).json()
    assert (model["kind"], model["model_format"], model["owner_tenant_id"]) == (
        "lora", "diffusers_lora", str(customer.tenant_id))
    assert model["parent_id"] == str(served_model) and model["licensed_only"]

    request = {"prompt": "red blocks", "seed": 5, "steps": 3}
    generated = client.post("/v1/generations", headers=customer.headers, json={"model_id": lora_id, **request})
    assert generated.status_code == 200, generated.text
    body = generated.json()
    assert body["status"] == "succeeded" and body["model_id"] == lora_id and len(body["images"]) == 1
    base = client.post("/v1/generations", headers=customer.headers,
                       json={"model_id": str(served_model), **request}).json()
    assert body["images"][0]["raw_sha256"] != base["images"][0]["raw_sha256"]  # the adapter changed the pixels
    # a request without guidance gets the adapter's own; its base keeps its pipeline's
    assert body["request"]["guidance_scale"] == 6.5 and base["request"]["guidance_scale"] != 6.5
    assert sum(line["amount"] for line in body["attribution"]["contributors"]) == body["attribution"]["pool"]
    image = client.get(body["images"][0]["url"], headers=customer.headers)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"

    rival = make_customer(sessions, "Rival Brands")
    refused = client.post("/v1/generations", headers=rival.headers, json={"model_id": lora_id, **request})
    assert (refused.status_code, refused.json()["error"]["code"]) == (404, "model_not_found")
    assert client.get(f"/v1/models/{lora_id}", headers=rival.headers).status_code == 404
    assert lora_id not in [m["id"] for m in client.get("/v1/models", headers=rival.headers).json()]

    # the tenant's model never becomes the base of a shared model or of another tenant's
    for owner in (None, str(rival.tenant_id)):
        shared = client.post("/v1/training-jobs", headers=ADMIN, json={
            "name": "x", "recipe": "finetune", "snapshot_id": snapshot_id, "base_model_id": lora_id,
            "tenant_id": owner})
        assert shared.status_code == 422


def test_training_job_tenant_inputs_are_checked(client, customer, served_model, sessions):
    snapshot_id = tenant_snapshot(client, customer.tenant_id)
    shared = client.post("/v1/datasets", headers=ADMIN, json={"name": "shared", "use": "customer_finetune"}).json()
    unknown = client.post("/v1/training-jobs", headers=ADMIN, json={
        "name": "x", "recipe": "lora", "snapshot_id": shared["id"], "base_model_id": str(served_model),
        "tenant_id": str(uuid.uuid4()), "settings": tiny_lora_settings()})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "tenant_not_found")
    rival = make_customer(sessions, "Rival Brands")
    mismatch = client.post("/v1/training-jobs", headers=ADMIN, json={
        "name": "x", "recipe": "lora", "snapshot_id": snapshot_id, "base_model_id": str(served_model),
        "tenant_id": str(rival.tenant_id), "settings": tiny_lora_settings()})
    assert (mismatch.status_code, mismatch.json()["error"]["code"]) == (422, "snapshot_tenant_mismatch")
    with sessions() as session, session.begin():
        session.get(RegisteredModel, served_model).owner_tenant_id = rival.tenant_id
    not_theirs = client.post("/v1/training-jobs", headers=ADMIN, json={
        "name": "x", "recipe": "lora", "snapshot_id": snapshot_id, "base_model_id": str(served_model),
        "tenant_id": str(customer.tenant_id), "settings": tiny_lora_settings()})
    assert (not_theirs.status_code, not_theirs.json()["error"]["code"]) == (422, "base_model_tenant_mismatch")
    assert client.post("/v1/training-jobs", headers=customer.headers, json={
        "name": "x", "recipe": "lora", "snapshot_id": snapshot_id, "base_model_id": str(served_model),
        "tenant_id": str(customer.tenant_id)}).status_code == 403


def test_cli_trains_a_tenant_lora(client, customer, served_model, migrated, sessions):
    snapshot_id = tenant_snapshot(client, customer.tenant_id)
    args = ["train", "start", "--recipe", "lora", "--snapshot", snapshot_id, "--base-model", str(served_model),
            "--tenant", str(customer.tenant_id), "--name", "acme-cli-lora", "--inline"]
    for key, value in tiny_lora_settings().items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    done = cli(migrated.model_copy(update={"attribution_index_after_training": False}), *args)
    assert f"for tenant {customer.tenant_id}" in done.stdout and "succeeded: model" in done.stdout
    model_id = uuid.UUID(done.stdout.rsplit("model", 1)[1].split()[0])
    with sessions() as session:
        model = session.get(RegisteredModel, model_id)
        assert (model.owner_tenant_id, model.kind) == (customer.tenant_id, "lora")
    generated = client.post("/v1/generations", headers=customer.headers,
                            json={"model_id": str(model_id), "prompt": "blue blocks", "steps": 2})
    assert generated.status_code == 200, generated.text

    bad = cli(migrated, "train", "start", "--recipe", "lora", "--snapshot", snapshot_id, "--base-model",
              str(served_model), "--tenant", "acme", "--name", "x", check=False)
    assert bad.returncode == 1 and "not a tenant id" in bad.stderr and "Traceback" not in bad.stderr
    shared = client.post("/v1/datasets", headers=ADMIN, json={"name": "shared", "use": "customer_finetune"}).json()
    unknown = cli(migrated, "train", "start", "--recipe", "lora", "--snapshot", shared["id"], "--base-model",
                  str(served_model), "--tenant", str(uuid.uuid4()), "--name", "x", check=False)
    assert unknown.returncode == 1 and "does not exist" in unknown.stderr and "Traceback" not in unknown.stderr
