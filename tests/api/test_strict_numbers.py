"""Booleans and strings are not integers: request bodies with them in number fields are refused (422
with the field), never read as 0, 1 or 5."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.api.conftest import Keys


@pytest.fixture
def client(migrated):
    with TestClient(create_app(migrated)) as test_client:
        yield test_client


@pytest.mark.parametrize("value", [False, True, "0", "30", 1.0])
def test_number_fields_refuse_booleans_and_strings(client, keys, value):
    admin = Keys.headers(keys.admin)
    cases = [
        (f"/v1/models/{uuid.uuid4()}/revocation-policy", "put",
         {"policy": "stop_after_grace", "grace_days": value}, "body.grace_days"),
        ("/v1/prices", "post", {"unit_price": value, "currency": "USD", "pool_share_bps": 4000}, "body.unit_price"),
        ("/v1/prices", "post", {"unit_price": 25, "currency": "USD", "pool_share_bps": value}, "body.pool_share_bps"),
        ("/v1/datasets", "post", {"name": "x", "use": "base_training", "filters": {"limit": value}},
         "body.filters.limit"),
    ]
    for path, method, body, field in cases:
        response = getattr(client, method)(path, headers=admin, json=body)
        assert response.status_code == 422, (path, body, response.text)
        error = response.json()["error"]
        assert error["code"] == "validation_error" and field in [f["field"] for f in error["fields"]], error


def test_integers_and_uuid_strings_are_still_accepted(client, keys):
    admin = Keys.headers(keys.admin)
    price = client.post("/v1/prices", headers=admin, json={"unit_price": 25, "currency": "USD", "pool_share_bps": 4000,
                                                           "tenant_id": str(keys.tenant_id)})
    assert price.status_code == 201, price.text
    missing = client.put(f"/v1/models/{uuid.uuid4()}/revocation-policy", headers=admin,
                         json={"policy": "stop_after_grace", "grace_days": 0})
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "model_not_found")
