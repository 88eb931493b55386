"""The served OpenAPI document is valid OpenAPI 3.1, documents every error answer with the one error
body schema, gives formats for cursors and periods, and 405 answers name every allowed method."""

from __future__ import annotations

import json
import uuid

import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import OpenAPIV31SpecValidator

from api.app import create_app
from api.errors import ErrorBody
from tests.api.conftest import Keys


@pytest.fixture
def client(migrated):
    with TestClient(create_app(migrated)) as test_client:
        yield test_client


@pytest.fixture
def document(client) -> dict:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(document):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method.upper(), operation


def test_the_served_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []


def test_no_tuple_schemas_top_contributors_are_objects(document):
    schemas = document["components"]["schemas"]
    assert schemas["CatalogSummaryRead"]["properties"]["top_contributors"]["items"] == {
        "$ref": "#/components/schemas/ContributorAssets"}
    assert set(schemas["ContributorAssets"]["properties"]) == {"display_name", "assets"}
    text = json.dumps(document)
    assert '"prefixItems"' not in text and '"items": [' not in text


def test_every_operation_documents_its_errors_with_the_error_body(document):
    for path, method, operation in operations(document):
        responses = operation["responses"]
        if path == "/v1/health":
            assert set(responses) == {"200"}
            continue
        assert {"401", "429"} <= set(responses), (method, path)
        assert operation["security"] == [{"bearerAuth": []}] and operation["x-roles"], (method, path)
        if "{" in path:
            assert "404" in responses, (method, path)
        if operation.get("parameters") or operation.get("requestBody"):
            assert "422" in responses, (method, path)
        if operation.get("requestBody"):
            assert {"400", "413"} <= set(responses), (method, path)
        if set(operation["x-roles"]) != {"admin", "customer", "artist"}:
            assert "403" in responses, (method, path)
        for status, response in responses.items():
            if int(status) >= 400:
                assert response["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    detail = document["components"]["schemas"]["ErrorDetail"]
    assert set(detail["required"]) == {"code", "message"}


def test_known_domain_errors_are_documented(document):
    expected = {
        ("POST", "/v1/generations"): {"404", "409", "503"},
        ("POST", "/v1/training-jobs"): {"404"},
        ("POST", "/v1/training-jobs/{job_id}/cancel"): {"409"},
        ("POST", "/v1/payout-periods/{period}/close"): {"409"},
        ("POST", "/v1/me/withdrawals"): {"403", "404", "409"},
        ("GET", "/v1/me/statements"): {"403"},
        ("POST", "/v1/provenance/verify"): {"503"},
    }
    found = {(method, path): set(operation["responses"]) for path, method, operation in operations(document)}
    for key, statuses in expected.items():
        assert statuses <= found[key], key


def test_cursor_and_period_formats_are_in_the_schema(document):
    listing = document["paths"]["/v1/generations"]["get"]["parameters"]
    cursor = next(p for p in listing if p["name"] == "cursor")
    cursor_schema = next(s for s in cursor["schema"]["anyOf"] if s.get("type") == "string")
    assert cursor_schema["pattern"] and cursor["description"]
    for path in ("/v1/me/statements/{period}", "/v1/payout-periods/{period}/close"):
        methods = document["paths"][path]
        parameter = next(p for op in methods.values() for p in op["parameters"] if p["name"] == "period")
        assert parameter["schema"]["pattern"] == "^[0-9]{4}-[0-9]{2}$" and "YYYY-MM" in parameter["description"]


def test_405_names_every_method_of_the_path(client, keys):
    admin = Keys.headers(keys.admin)
    cases = {("DELETE", "/v1/datasets"): "GET, POST",
             ("PATCH", f"/v1/models/{uuid.uuid4()}/attribution"): "GET, PUT",
             ("DELETE", f"/v1/models/{uuid.uuid4()}/attribution-indexes"): "GET, POST",
             ("PUT", "/v1/prices"): "GET, POST"}
    for (method, path), allow in cases.items():
        response = client.request(method, path, headers=admin)
        assert (response.status_code, response.headers["allow"]) == (405, allow), (method, path)
        assert response.json()["error"]["code"] == "method_not_allowed"


def test_error_answers_match_the_documented_body(client, keys):
    answers = [
        client.get("/v1/catalog/summary"),
        client.get("/v1/catalog/summary", headers=Keys.headers(keys.customer)),
        client.get(f"/v1/datasets/{uuid.uuid4()}", headers=Keys.headers(keys.admin)),
        client.get("/v1/datasets", params={"offset": -1}, headers=Keys.headers(keys.admin)),
        client.post("/v1/datasets", content=b"u\xe9\x80", headers={**Keys.headers(keys.admin),
                                                                    "Content-Type": "application/json"}),
    ]
    assert [a.status_code for a in answers] == [401, 403, 404, 422, 400]
    for answer in answers:
        ErrorBody.model_validate(answer.json(), strict=True)
