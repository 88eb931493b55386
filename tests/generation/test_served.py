"""The real deployment shape: uvicorn serving the API and a Celery worker on the generation queue,
on Redis + PostgreSQL and on the embedded default (SQLite + SQLite broker)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from foundry.db import utcnow
from foundry.generation.models import Generation
from foundry.processes import free_port
from foundry.webhooks.policy import verify
from tests.support.brokers import redis_test_url
from tests.support.receiver import webhook_receiver
from tests.training_jobs.test_worker import settings_with_broker, stop, worker_env
from worker.app import GENERATION_QUEUE

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("generation-worker")]


@pytest.fixture
def broker_settings(migrated, database_url):
    return settings_with_broker(migrated, database_url, redis_test_url("generation"))


def served_env(settings) -> dict[str, str]:
    return {**worker_env(settings), "FOUNDRY_ADMIN_API_KEY": "test-admin-key",
            "FOUNDRY_GENERATION_STALE_AFTER_S": "3", "FOUNDRY_RATE_LIMIT_PER_MINUTE": "100000",
            "FOUNDRY_RATE_LIMIT_BURST": "1000", "FOUNDRY_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
            "FOUNDRY_WEBHOOK_POLL_S": "0.5"}


@pytest.fixture
def deployment(broker_settings, served_model, tmp_path):
    """(base URL, worker log) for a running uvicorn + generation worker."""
    port = free_port()
    api_log, worker_log = (tmp_path / "api.log").open("ab"), tmp_path / "worker.log"
    api = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--port", str(port)],
                           env=served_env(broker_settings), stdout=api_log, stderr=subprocess.STDOUT,
                           start_new_session=True)
    worker = subprocess.Popen([sys.executable, "-m", "foundry.cli", "worker", "--queues", GENERATION_QUEUE],
                              env=served_env(broker_settings), stdout=worker_log.open("ab"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield base, worker_log
    finally:
        stop(worker)
        stop(api)


def wait_until_done(http, customer, generation_id, worker_log, timeout=180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = http.get(f"/v1/generations/{generation_id}", headers=customer.headers).json()
        if body["status"] in ("succeeded", "failed"):
            return body
        time.sleep(0.3)
    pytest.fail(f"generation {generation_id} stuck at {body['status']}\n{worker_log.read_text()[-3000:]}")


def test_async_generation_through_uvicorn_and_a_worker(deployment, customer, served_model, sessions):
    base, worker_log = deployment
    with httpx.Client(base_url=base, timeout=120) as http, webhook_receiver() as receiver:
        hook = http.post("/v1/webhooks", headers=customer.headers,
                         json={"url": receiver.url, "events": ["generation.succeeded"]})
        assert hook.status_code == 201, hook.text
        request = {"model_id": str(served_model), "prompt": "green tiles", "steps": 3, "seed": 11, "num_images": 2,
                   "mode": "async"}
        accepted = http.post("/v1/generations", json=request, headers={**customer.headers, "Idempotency-Key": "a1"})
        assert accepted.status_code == 202, accepted.text
        # queued: its place in line; a worker may already have taken it before the answer was read
        answer = accepted.json()
        assert answer["queue_position"] >= 1 if answer["status"] == "queued" else answer["queue_position"] is None
        done = wait_until_done(http, customer, accepted.json()["id"], worker_log)
        assert done["status"] == "succeeded", done["error"]
        assert sum(c["amount"] for c in done["attribution"]["contributors"]) == done["attribution"]["pool"]
        replay = http.post("/v1/generations", json=request, headers={**customer.headers, "Idempotency-Key": "a1"})
        assert replay.status_code == 200 and replay.json()["id"] == done["id"]

        # the sync path in the API process renders the same bytes as the worker did
        sync = http.post("/v1/generations", json={**request, "mode": "auto"}, headers=customer.headers).json()
        assert [i["raw_sha256"] for i in sync["images"]] == [i["raw_sha256"] for i in done["images"]]

        png = http.get(done["images"][1]["url"], headers=customer.headers).content
        report = http.post("/v1/provenance/verify", headers=customer.headers,
                           files={"image": ("x.png", png, "image/png")}).json()
        assert (report["method"], report["manifest"]["verdict"], report["image_index"]) == ("c2pa", "trusted", 1)
        balances = http.get("/v1/ledger/balances", headers={"Authorization": "Bearer test-admin-key"}).json()
        assert balances["sums"] == {"USD": 0}
        assert http.get("/v1/me", headers=customer.headers).json()["balance"]["amount"] == -100

        # the worker's timer sends each generation's webhook, signed, to the tenant's receiver
        deadline = time.monotonic() + 30
        while len(receiver.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        sent = {json.loads(r.body)["data"]["generation_id"] for r in receiver.requests}
        assert sent == {done["id"], sync["id"]}, worker_log.read_text()[-3000:]
        assert all(verify(hook.json()["secret"], r.headers["foundry-signature"], r.body, now=datetime.now(UTC))
                   for r in receiver.requests)


def test_a_generation_left_running_by_a_dead_worker_is_served_again(deployment, customer, served_model, sessions):
    base, worker_log = deployment
    with httpx.Client(base_url=base, timeout=120) as http:
        # a generation a dead worker had claimed (running, nothing written) long ago
        accepted = http.post("/v1/generations", headers=customer.headers, json={
            "model_id": str(served_model), "prompt": "red blocks", "steps": 2, "mode": "async"}).json()
        done = wait_until_done(http, customer, accepted["id"], worker_log)
        assert done["status"] == "succeeded"
        with sessions() as session, session.begin():
            orphan_id = uuid.uuid4()
            template = session.get(Generation, uuid.UUID(accepted["id"]))
            session.add(Generation(
                id=orphan_id, tenant_id=template.tenant_id, model_id=template.model_id, request=template.request,
                request_sha256="0" * 64, prompt=template.prompt, seed=template.seed, num_images=1, mode="async",
                status="running", started_at=utcnow() - timedelta(minutes=5), price_rule_id=template.price_rule_id,
                unit_price=template.unit_price, currency=template.currency))
        revived = wait_until_done(http, customer, orphan_id, worker_log)
        assert revived["status"] == "succeeded" and len(revived["images"]) == 1
