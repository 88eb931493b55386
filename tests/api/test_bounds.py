"""Numbers a database driver cannot hold never reach it: offsets, thresholds, image indexes and
snapshot limits are bounded in the schema (422 with the field), and the largest accepted value works."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.params import MAX_INT32
from foundry.db import utcnow
from foundry.ledger.periods import period_of
from tests.api.conftest import Keys

HUGE = [str(2**64), str(10**35), str(2**70), "1e35"]


@pytest.fixture
def client(migrated):
    unlimited = migrated.model_copy(update={"rate_limit_burst": 100_000, "rate_limit_per_minute": 100_000})
    with TestClient(create_app(unlimited)) as test_client:
        yield test_client


def list_endpoints(keys: Keys) -> list[tuple[str, str]]:
    """(path, key) for every list endpoint that pages with an offset, with a key that may call it."""
    period = period_of(utcnow())
    return [
        ("/v1/catalog/imports", keys.admin),
        ("/v1/datasets", keys.admin),
        (f"/v1/datasets/{uuid.uuid4()}/entries", keys.admin),
        ("/v1/training-jobs", keys.admin),
        ("/v1/models", keys.admin),
        ("/v1/models", keys.customer),
        ("/v1/me/ledger", keys.customer),
        ("/v1/me/ledger", keys.artist),
        (f"/v1/me/statements/{period}", keys.artist),
        (f"/v1/contributors/{keys.contributor_id}/statements/{period}", keys.admin),
    ]


def assert_field_error(response, field: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in [item["field"] for item in error["fields"]]


def test_offsets_beyond_what_a_driver_holds_are_422(client, keys):
    for path, key in list_endpoints(keys):
        for value in [*HUGE, "-1", str(MAX_INT32 + 1)]:
            assert_field_error(client.get(path, params={"offset": value}, headers=Keys.headers(key)), "query.offset")


def test_the_largest_accepted_offset_reaches_the_database_and_pages_past_the_end(client, keys):
    for path, key in list_endpoints(keys):
        if "/entries" in path:
            continue  # needs a snapshot; its bound is the same Offset type
        response = client.get(path, params={"offset": MAX_INT32}, headers=Keys.headers(key))
        assert response.status_code == 200, (path, response.text)


def test_image_indexes_thresholds_and_snapshot_limits_are_bounded(client, keys):
    customer, admin = Keys.headers(keys.customer), Keys.headers(keys.admin)
    for index in [*HUGE[:3], "-1", "8"]:
        assert_field_error(client.get(f"/v1/generations/{uuid.uuid4()}/images/{index}", headers=customer), "path.index")
    unknown = client.get(f"/v1/generations/{uuid.uuid4()}/images/7", headers=customer)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "generation_not_found")

    for threshold in [str(2**64), "-1"]:
        response = client.post(f"/v1/payout-periods/{period_of(utcnow())}/close", params={"threshold": threshold},
                               headers=admin)
        assert_field_error(response, "query.threshold")

    response = client.post("/v1/datasets", headers=admin, json={
        "name": "x", "use": "base_training", "filters": {"limit": 2**70}})
    assert_field_error(response, "body.filters.limit")
    accepted = client.post("/v1/datasets", headers=admin, json={
        "name": "x", "use": "base_training", "filters": {"limit": MAX_INT32}})
    assert accepted.json()["error"]["code"] == "snapshot_empty"  # the query ran with that limit: no catalog here
