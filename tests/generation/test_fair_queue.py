"""The generation queue is fair across tenants: round robin, per-tenant concurrency, honest positions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from foundry.fair_queue import TenantQueue, fair_position, next_tenant, rotation
from foundry.generation import service as generation_service
from tests.generation.conftest import make_customer

T0 = datetime(2026, 12, 5, tzinfo=UTC)


def tenant(name: str, queued: int, running: int = 0, served_minutes_ago: float | None = None,
           waiting_minutes: float = 1.0) -> TenantQueue:
    return TenantQueue(tenant_id=uuid.uuid5(uuid.NAMESPACE_DNS, name), queued=queued, running=running,
                       last_started_at=None if served_minutes_ago is None else T0 - timedelta(minutes=served_minutes_ago),
                       oldest_queued_at=T0 - timedelta(minutes=waiting_minutes))


def test_a_tenant_with_one_request_is_next_after_a_tenant_with_hundreds():
    busy, single = tenant("busy", 200, served_minutes_ago=0.01, waiting_minutes=5), tenant("single", 1)
    assert next_tenant([busy, single], concurrency=4) == single
    assert fair_position(single.tenant_id, 0, [busy, single]) == 1
    assert fair_position(busy.tenant_id, 0, [busy, single]) == 2
    assert fair_position(busy.tenant_id, 5, [busy, single]) == 7  # the single request is ahead once, not six times
    # both served: the one served longer ago goes first; a tenant running more waits behind one running less
    served = tenant("single", 1, served_minutes_ago=1)
    assert [t.tenant_id for t in rotation([busy, served])] == [served.tenant_id, busy.tenant_id]
    assert rotation([tenant("a", 3, running=1), tenant("b", 3, running=0, served_minutes_ago=0)])[0].queued == 3
    assert next_tenant([tenant("a", 3, running=4), single], concurrency=4) == single
    assert next_tenant([tenant("a", 3, running=4)], concurrency=4) is None
    assert next_tenant([], concurrency=4) is None


def test_workers_take_turns_across_tenants_and_positions_follow(client, sessions, served_model):
    busy, single = make_customer(sessions, "Busy Brands"), make_customer(sessions, "Single Brand")

    def queue(customer, prompt):
        answer = client.post("/v1/generations", headers=customer.headers, json={
            "model_id": str(served_model), "prompt": prompt, "steps": 2, "mode": "async"})
        assert answer.status_code == 202, answer.text
        return answer.json()

    first = [queue(busy, f"red blocks {i}") for i in range(5)]
    assert [g["queue_position"] for g in first] == [1, 2, 3, 4, 5]
    lone = queue(single, "blue blocks")
    assert lone["queue_position"] == 2, "a tenant's first request waits behind one of another's five, not all"
    assert client.get(f"/v1/generations/{first[1]['id']}", headers=busy.headers).json()["queue_position"] == 3

    order = []
    with sessions() as session, session.begin():
        for _ in range(6):
            claimed = generation_service.claim_next(session=session, concurrency=10)
            order.append(session.get(generation_service.Generation, claimed).tenant_id)
        assert generation_service.claim_next(session=session, concurrency=10) is None
    assert order == [busy.tenant_id, single.tenant_id] + [busy.tenant_id] * 4  # neither served yet: the older first

    more = [queue(busy, f"green tiles {i}") for i in range(2)]
    with sessions() as session, session.begin():  # five of busy's are running: its limit holds the rest back
        assert generation_service.claim_next(session=session, concurrency=5) is None
        assert generation_service.claim_next(session=session, concurrency=6) == uuid.UUID(more[0]["id"])


def test_a_generation_claimed_while_it_is_read_is_not_answered_as_queued_without_a_place(client, sessions,
                                                                                         served_model):
    """The race CI once met: the API read a generation as queued, a worker claimed it, then the position was
    counted from the fresh queue (none): the answer must give the status the position was counted for."""
    customer = make_customer(sessions, "Racing Brands")
    queued = client.post("/v1/generations", headers=customer.headers, json={
        "model_id": str(served_model), "prompt": "red blocks", "steps": 2, "mode": "async"}).json()
    generation_id = uuid.UUID(queued["id"])
    with sessions() as reader:
        generation = reader.get(generation_service.Generation, generation_id)
        assert generation.status == "queued"
        with sessions() as worker, worker.begin():
            assert generation_service.claim_next(session=worker, concurrency=10) == generation_id
        assert generation_service.queue_position(session=reader, generation=generation) is None
        assert generation.status == "running"
