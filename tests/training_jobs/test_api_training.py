"""Training jobs and the model registry over HTTP."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.training_jobs.conftest import TINY_SHAPE
from worker import jobs as job_runner

ADMIN = {"Authorization": "Bearer test-admin-key"}


@pytest.fixture
def client(migrated):
    with TestClient(create_app(migrated)) as test_client:
        yield test_client


def tiny_settings(**extra) -> dict:
    import dataclasses

    return {"model_shape": dataclasses.asdict(TINY_SHAPE), "resolution": 32, "train_batch_size": 4,
            "max_train_steps": 2, "checkpoint_every": 0, "validation_every": 0,
            "validation_prompts": ["red blocks"], "validation_inference_steps": 2, **extra}


@pytest.mark.slow
def test_job_lifecycle_and_model_lineage_over_http(client, migrated, base_snapshot):
    created = client.post("/v1/training-jobs", headers=ADMIN, json={
        "name": "tiny-base", "recipe": "base", "snapshot_id": str(base_snapshot.id), "settings": tiny_settings()})
    assert created.status_code == 202, created.text
    job = created.json()
    assert (job["status"], job["total_steps"]) == ("queued", 2)
    assert (migrated.var_dir / "broker.db").is_file()  # the embedded broker holds the message

    assert job_runner.run_job(migrated, uuid.UUID(job["id"]), worker="test") == "succeeded"  # what a worker does
    done = client.get(f"/v1/training-jobs/{job['id']}", headers=ADMIN).json()
    assert done["status"] == "succeeded" and done["step"] == 2
    model = client.get(f"/v1/models/{done['result_model_id']}", headers=ADMIN).json()
    assert model["licensed_only"] and model["snapshot_merkle_root"] == base_snapshot.merkle_root
    lineage = client.get(f"/v1/models/{model['id']}/lineage", headers=ADMIN).json()
    assert [step["kind"] for step in lineage] == ["base"]
    assert [m["id"] for m in client.get("/v1/models", headers=ADMIN).json()] == [model["id"]]
    finished = client.post(f"/v1/training-jobs/{job['id']}/cancel", headers=ADMIN)
    assert (finished.status_code, finished.json()["error"]["code"]) == (409, "training_job_finished")


def test_cancel_and_bad_requests(client, base_snapshot):
    job = client.post("/v1/training-jobs", headers=ADMIN, json={
        "name": "x", "recipe": "base", "snapshot_id": str(base_snapshot.id), "settings": tiny_settings()}).json()
    cancelled = client.post(f"/v1/training-jobs/{job['id']}/cancel", headers=ADMIN).json()
    assert cancelled["status"] == "cancelled"
    again = client.post(f"/v1/training-jobs/{job['id']}/cancel", headers=ADMIN).json()
    assert again["status"] == "cancelled"

    cases = [
        ({"name": "x", "recipe": "dreambooth", "snapshot_id": str(base_snapshot.id)}, 422, "validation_error"),
        ({"name": "x", "recipe": "base", "snapshot_id": str(base_snapshot.id), "settings": {"max_train_steps": "many"}},
         422, "invalid_recipe"),
        ({"name": "x", "recipe": "base", "snapshot_id": str(base_snapshot.id), "settings": {"bogus": 1}},
         422, "invalid_recipe"),
        ({"name": "x", "recipe": "base", "snapshot_id": str(base_snapshot.id),
          "settings": {**tiny_settings(), "max_train_steps": 2**70}}, 422, "invalid_recipe"),
        ({"name": "x", "recipe": "base", "snapshot_id": str(base_snapshot.id),
          "settings": {**tiny_settings(), "max_train_steps": 2**31}}, 422, "invalid_recipe"),
        ({"name": "x", "recipe": "base", "preset": "enormous", "snapshot_id": str(base_snapshot.id)},
         422, "unknown_preset"),
        ({"name": "x", "recipe": "lora", "preset": "demo", "snapshot_id": str(base_snapshot.id)},
         422, "invalid_recipe"),
        ({"name": "x", "recipe": "base", "snapshot_id": str(uuid.uuid4()), "settings": tiny_settings()},
         404, "snapshot_not_found"),
        ({"name": "x", "recipe": "lora", "snapshot_id": str(base_snapshot.id), "base_model_id": str(uuid.uuid4())},
         404, "model_not_found"),
    ]
    for body, code, error in cases:
        response = client.post("/v1/training-jobs", headers=ADMIN, json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (code, error), body
    assert client.get(f"/v1/training-jobs/{uuid.uuid4()}", headers=ADMIN).status_code == 404
    assert client.get("/v1/training-jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401


@pytest.mark.slow
def test_cli_trains_inline_and_reports_bad_recipes(migrated, base_snapshot):
    import json

    from tests.test_cli_and_migrations import cli

    settings = tiny_settings()
    args = ["train", "start", "--snapshot", str(base_snapshot.id), "--name", "cli-model", "--inline"]
    for key, value in settings.items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    done = cli(migrated, *args)
    assert "succeeded: model" in done.stdout
    model_id = done.stdout.rsplit("model", 1)[1].split()[0]
    assert "licensed_only=True" in cli(migrated, "models", "lineage", model_id).stdout

    bad = cli(migrated, "train", "start", "--snapshot", str(base_snapshot.id), "--name", "x",
              "--set", "bogus=1", check=False)
    assert bad.returncode == 1 and "invalid recipe settings" in bad.stderr and "Traceback" not in bad.stderr
