"""A tenant's generations reach its webhooks: the event is recorded with the outcome, then sent."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from api.app import create_app
from foundry.generation import service as generation_service
from foundry.usecases.webhooks import deliver_due
from foundry.webhooks import service as webhook_service
from foundry.webhooks.policy import verify
from tests.support.receiver import webhook_receiver


def test_generations_send_succeeded_and_failed_events(migrated, sessions, customer, served_model):
    settings = migrated.model_copy(update={"webhook_allow_private_targets": True})
    with webhook_receiver() as receiver, TestClient(create_app(settings)) as client:
        endpoint = client.post("/v1/webhooks", headers=customer.headers, json={"url": receiver.url}).json()
        done = client.post("/v1/generations", headers=customer.headers,
                           json={"model_id": str(served_model), "prompt": "red blocks", "seed": 1, "steps": 2})
        assert done.status_code == 200, done.text
        queued = client.post("/v1/generations", headers=customer.headers, json={
            "model_id": str(served_model), "prompt": "blue blocks", "steps": 2, "mode": "async"}).json()
        with sessions() as session, session.begin():
            generation_service.fail_generation(session=session, generation_id=uuid.UUID(queued["id"]),
                                               code="generation_failed", message="the worker ran out of memory")
            generation_service.fail_generation(session=session, generation_id=uuid.UUID(queued["id"]),
                                               code="generation_failed", message="again")  # no second event
        with sessions() as session:
            pending = webhook_service.list_deliveries(session=session, tenant_id=customer.tenant_id)
        assert sorted(d.event_type for d in pending) == ["generation.failed", "generation.succeeded"]
        assert {d.status for d in pending} == {"pending"}, "recorded with the outcome, sent afterwards"

        assert deliver_due(settings) == 2
        events = {json.loads(r.body)["type"]: (r, json.loads(r.body)) for r in receiver.requests}
        request, succeeded = events["generation.succeeded"]
        assert verify(endpoint["secret"], request.headers["foundry-signature"], request.body, now=datetime.now(UTC))
        body = done.json()
        assert succeeded["data"]["generation_id"] == body["id"] and succeeded["data"]["status"] == "succeeded"
        assert succeeded["data"]["images"][0]["url"] == body["images"][0]["url"]
        assert succeeded["data"]["charge"] == {"amount": body["price"]["charge"], "currency": "USD"}
        failed = events["generation.failed"][1]["data"]
        assert failed["generation_id"] == queued["id"]
        assert failed["error"] == {"code": "generation_failed", "message": "the worker ran out of memory"}
        log = client.get("/v1/webhooks/deliveries", headers=customer.headers).json()
        assert {d["status"] for d in log} == {"delivered"} and len(log) == 2
