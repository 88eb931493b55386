"""Webhooks: signed deliveries to a real receiver, retries with back-off, the replay window,
tenant isolation, private targets, and the events of generations and custom models."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from foundry.db import session_factory
from foundry.usecases.webhooks import deliver_due, http_post
from foundry.webhooks import service as webhook_service
from foundry.webhooks.policy import (
    MAX_ATTEMPTS,
    MAX_RETRY_DELAY,
    address_problem,
    retry_delay,
    sign,
    url_problem,
    verify,
)
from tests.support.accounts import customer_keys
from tests.support.receiver import webhook_receiver

ADMIN = {"Authorization": "Bearer test-admin-key"}


# ----------------------------------------------------------------------------------- pure rules


def test_a_signature_verifies_only_for_its_body_its_secret_and_inside_the_window():
    body, now = b'{"id":"1"}', datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    header = sign("whsec_a", int(now.timestamp()), body)
    assert header.startswith(f"t={int(now.timestamp())},v1=") and verify("whsec_a", header, body, now=now)
    assert not verify("whsec_a", header, body + b" ", now=now), "a changed body"
    assert not verify("whsec_b", header, body, now=now), "another secret"
    assert verify("whsec_a", header, body, now=now + timedelta(minutes=4))
    assert not verify("whsec_a", header, body, now=now + timedelta(minutes=6)), "a replay after the window"
    assert not verify("whsec_a", header, body, now=now - timedelta(minutes=6)), "from the future"
    forged = header.replace(f"t={int(now.timestamp())}", f"t={int(now.timestamp()) + 300}")
    assert not verify("whsec_a", forged, body, now=now + timedelta(minutes=5)), "the timestamp is inside the MAC"
    assert not verify("whsec_a", "v1=abc", body, now=now) and not verify("whsec_a", "t=x,v1=abc", body, now=now)


def test_retries_back_off_exponentially_up_to_a_last_attempt():
    base = timedelta(seconds=30)
    assert [retry_delay(n, base).total_seconds() for n in range(1, 5)] == [30, 60, 120, 240]
    assert retry_delay(MAX_ATTEMPTS - 1, timedelta(hours=1)) == MAX_RETRY_DELAY
    assert retry_delay(MAX_ATTEMPTS, base) is None


@pytest.mark.parametrize(("url", "problem"), [
    ("https://hooks.example.com/in", None), ("http://hooks.example.com:8080/x?a=1", None),
    ("ftp://hooks.example.com/", "https://"), ("https:///nohost", "no host"),
    ("https://user:pw@hooks.example.com/", "credentials"), ("https://hooks.example.com/#x", "fragment"),
    ("https://hooks.example.com:99999/", "cannot be parsed"), ("https://x.example/" + "a" * 2000, "2,000"),
])
def test_endpoint_urls_are_checked(url, problem):
    found = url_problem(url)
    assert found is None if problem is None else problem in found


def test_private_addresses_are_refused_unless_allowed():
    for address in ("127.0.0.1", "10.1.2.3", "192.168.0.9", "169.254.169.254", "::1", "fd00::1"):
        assert address_problem(address, allow_private=False), address
        assert address_problem(address, allow_private=True) is None
    assert address_problem("93.184.216.34", allow_private=False) is None


# ----------------------------------------------------------------------------------- with a database


@pytest.fixture
def hook_settings(migrated):
    return migrated.model_copy(update={"webhook_allow_private_targets": True, "webhook_retry_base_s": 0.05})


@pytest.fixture
def tenants(migrated):
    return customer_keys(session_factory(migrated.resolved_database_url), "Acme", "Globex")


def test_a_customer_registers_an_endpoint_and_receives_a_signed_test_event(hook_settings, tenants):
    acme, acme_headers = tenants["Acme"]
    _, globex_headers = tenants["Globex"]
    with webhook_receiver() as receiver, TestClient(create_app(hook_settings)) as client:
        created = client.post("/v1/webhooks", headers=acme_headers,
                              json={"url": receiver.url, "events": ["generation.succeeded"]})
        assert created.status_code == 201, created.text
        endpoint = created.json()
        assert endpoint["tenant_id"] == str(acme) and endpoint["secret"].startswith("whsec_")
        assert "secret" not in client.get(f"/v1/webhooks/{endpoint['id']}", headers=acme_headers).json()

        tested = client.post(f"/v1/webhooks/{endpoint['id']}/test", headers=acme_headers)
        assert tested.status_code == 200, tested.text
        assert (tested.json()["status"], tested.json()["attempts"], tested.json()["last_status_code"]) == (
            "delivered", 1, 200)
        [request] = receiver.requests
        assert verify(endpoint["secret"], request.headers["foundry-signature"], request.body,
                      now=datetime.now(UTC))
        event = json.loads(request.body)
        assert event["type"] == request.headers["foundry-event-type"] == "webhook.test"
        assert event["id"] == request.headers["foundry-event-id"] and event["tenant_id"] == str(acme)

        log = client.get("/v1/webhooks/deliveries", headers=acme_headers).json()
        assert [d["status"] for d in log] == ["delivered"] and log[0]["payload"] == event
        # another tenant sees none of it
        assert client.get("/v1/webhooks", headers=globex_headers).json() == []
        assert client.get("/v1/webhooks/deliveries", headers=globex_headers).json() == []
        for method, path in (("get", ""), ("delete", ""), ("post", "/test")):
            answer = client.request(method, f"/v1/webhooks/{endpoint['id']}{path}", headers=globex_headers)
            assert (answer.status_code, answer.json()["error"]["code"]) == (404, "webhook_not_found")
        answer = client.get("/v1/webhooks/deliveries", params={"endpoint_id": endpoint["id"]}, headers=globex_headers)
        assert answer.status_code == 404
        # admins see every tenant's, and must say whose endpoint they register
        assert len(client.get("/v1/webhooks", headers=ADMIN).json()) == 1
        assert client.post("/v1/webhooks", headers=ADMIN, json={"url": receiver.url}).status_code == 422
        assert client.post("/v1/webhooks", headers=acme_headers,
                           json={"url": receiver.url, "tenant_id": str(tenants["Globex"][0])}).status_code == 422

        removed = client.delete(f"/v1/webhooks/{endpoint['id']}", headers=acme_headers)
        assert removed.status_code == 200 and removed.json()["disabled_at"]
        assert client.get("/v1/webhooks", headers=acme_headers).json() == []
        assert client.post(f"/v1/webhooks/{endpoint['id']}/test", headers=acme_headers).status_code == 404


def test_bad_endpoints_are_refused_before_anything_is_written(migrated, tenants):
    _, acme_headers = tenants["Acme"]
    with TestClient(create_app(migrated)) as client:  # private targets not allowed (the default)
        for url in ("http://127.0.0.1:9/x", "http://localhost/x", "http://10.0.0.7/", "ftp://example.com/"):
            answer = client.post("/v1/webhooks", headers=acme_headers, json={"url": url})
            assert (answer.status_code, answer.json()["error"]["code"]) == (422, "webhook_url_invalid"), url
        answer = client.post("/v1/webhooks", headers=acme_headers,
                             json={"url": "https://hooks.example.com/", "events": ["generation.exploded"]})
        assert answer.status_code == 422
        assert client.get("/v1/webhooks", headers=acme_headers).json() == []
        for number in range(webhook_service.MAX_ENDPOINTS_PER_TENANT):
            assert client.post("/v1/webhooks", headers=acme_headers,
                               json={"url": f"https://hooks.example.com/{number}"}).status_code == 201
        answer = client.post("/v1/webhooks", headers=acme_headers, json={"url": "https://hooks.example.com/x"})
        assert (answer.status_code, answer.json()["error"]["code"]) == (409, "webhook_limit_reached")


def record(settings, tenant_id, event_type="generation.succeeded", **data):
    with session_factory(settings.resolved_database_url)() as session, session.begin():
        return [d.id for d in webhook_service.record_event(session=session, tenant_id=tenant_id,
                                                           event_type=event_type, data=data)]


def deliveries(settings, tenant_id):
    with session_factory(settings.resolved_database_url)() as session:
        return {d.id: d for d in webhook_service.list_deliveries(session=session, tenant_id=tenant_id)}


def test_failed_deliveries_are_retried_with_back_off_until_delivered(hook_settings, tenants):
    acme, _ = tenants["Acme"]
    with webhook_receiver(answers=[500, 503]) as receiver:
        with session_factory(hook_settings.resolved_database_url)() as session, session.begin():
            _, secret = webhook_service.create_endpoint(session=session, tenant_id=acme, url=receiver.url, events=None,
                                                        created_by="test", allow_private=True)
        [delivery_id] = record(hook_settings, acme, generation_id="g1")
        assert record(hook_settings, tenants["Globex"][0]) == []  # no endpoint there: nothing queued

        assert deliver_due(hook_settings) == 1
        first = deliveries(hook_settings, acme)[delivery_id]
        assert (first.status, first.attempts, first.last_status_code) == ("pending", 1, 500)
        assert deliver_due(hook_settings) == 0, "not due before its back-off has passed"
        deadline = time.monotonic() + 10
        while deliveries(hook_settings, acme)[delivery_id].status != "delivered" and time.monotonic() < deadline:
            deliver_due(hook_settings)
            time.sleep(0.02)
        done = deliveries(hook_settings, acme)[delivery_id]
        assert (done.status, done.attempts, done.last_status_code, done.last_error) == ("delivered", 3, 200, None)
        assert len(receiver.requests) == 3
        assert len({r.headers["foundry-event-id"] for r in receiver.requests}) == 1, "one event, three attempts"
        assert all(verify(secret, r.headers["foundry-signature"], r.body, now=datetime.now(UTC))
                   for r in receiver.requests)


def test_a_delivery_gives_up_after_its_last_attempt(hook_settings, tenants):
    acme, _ = tenants["Acme"]
    with webhook_receiver(answers=[500] * 20) as receiver:
        with session_factory(hook_settings.resolved_database_url)() as session, session.begin():
            webhook_service.create_endpoint(session=session, tenant_id=acme, url=receiver.url, events=None,
                                            created_by="test", allow_private=True)
        [delivery_id] = record(hook_settings, acme)
        fast = hook_settings.model_copy(update={"webhook_retry_base_s": 0.001})
        deadline = time.monotonic() + 20
        while deliveries(fast, acme)[delivery_id].status == "pending" and time.monotonic() < deadline:
            deliver_due(fast)
        failed = deliveries(fast, acme)[delivery_id]
        assert (failed.status, failed.attempts, failed.next_attempt_at) == ("failed", MAX_ATTEMPTS, None)
        assert len(receiver.requests) == MAX_ATTEMPTS


def test_a_host_that_resolves_to_a_private_address_is_not_contacted(hook_settings, migrated, tenants):
    acme, _ = tenants["Acme"]
    with webhook_receiver() as receiver:
        with session_factory(hook_settings.resolved_database_url)() as session, session.begin():
            webhook_service.create_endpoint(session=session, tenant_id=acme, url=receiver.url, events=None,
                                            created_by="test", allow_private=True)
        [delivery_id] = record(hook_settings, acme)
        deliver_due(migrated, http_post(migrated))  # this deployment allows no private targets
        refused = deliveries(migrated, acme)[delivery_id]
        assert refused.status == "pending" and refused.last_error.startswith("refused:") and not receiver.requests


def test_events_follow_the_endpoint_subscription_and_stop_when_it_is_deleted(hook_settings, tenants):
    acme, _ = tenants["Acme"]
    with session_factory(hook_settings.resolved_database_url)() as session, session.begin():
        generations, _ = webhook_service.create_endpoint(
            session=session, tenant_id=acme, url="https://hooks.example.com/g", events=["generation.failed"],
            created_by="test", allow_private=False)
    assert record(hook_settings, acme, "generation.succeeded") == []
    assert len(record(hook_settings, acme, "generation.failed")) == 1
    with pytest.raises(ValueError, match="unknown webhook event type"):
        record(hook_settings, acme, "generation.exploded")
    with session_factory(hook_settings.resolved_database_url)() as session, session.begin():
        webhook_service.disable_endpoint(session=session, endpoint_id=generations.id, tenant_id=acme)
    assert {d.status for d in deliveries(hook_settings, acme).values()} == {"failed"}
    assert record(hook_settings, acme, "generation.failed") == []
