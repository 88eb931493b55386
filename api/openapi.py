"""The served OpenAPI document: every operation lists the errors it can answer with, all in the one
error body shape (``ErrorBody``), and says which operations need a key and which roles may call them
(``x-roles``).

What applies to an operation is read from the route itself: a key is needed under /v1 (401, 429),
a role dependency can refuse (403), a path id may name nothing (404), a body may be too large
(413) or unreadable (400: not UTF-8 JSON, broken multipart), parameters may be invalid (422).
Routes declare the
rest (a 409 conflict, a 404 for an id in the body, a 503) with ``error_responses``.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.deps import require_admin, require_customer, require_customer_or_admin
from api.errors import ERROR_DESCRIPTIONS, ErrorBody, every_route
from api.limits import needs_key

ROLES = ("admin", "customer", "artist")
ROLES_BY_CHECK = ((require_admin, ("admin",)), (require_customer, ("customer",)),
                  (require_customer_or_admin, ("admin", "customer")))
"""Role dependencies and the roles they let through; routes that check a role in their body say so with
``openapi_extra={"x-roles": [...]}``."""
BEARER = "bearerAuth"
_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_UNUSED_DEFAULTS = ("HTTPValidationError", "ValidationError")


def _calls(dependant) -> set:
    found = {dependant.call}
    for child in dependant.dependencies:
        found |= _calls(child)
    return found


def roles_of(route) -> list[str]:
    """Which key roles may call the route (none listed: no key needed)."""
    if not needs_key(route.path_format):
        return []
    explicit = (route.openapi_extra or {}).get("x-roles")
    if explicit:
        return list(explicit)
    calls = _calls(route.dependant)
    return next((list(roles) for check, roles in ROLES_BY_CHECK if check in calls), list(ROLES))


def _statuses(route) -> set[int]:
    path, dependant = route.path_format, route.dependant
    statuses: set[int] = set()
    if needs_key(path):
        statuses |= {401, 429}
    if needs_key(path) and set(roles_of(route)) != set(ROLES):
        statuses.add(403)
    if "{" in path:
        statuses.add(404)
    extra_body = (route.openapi_extra or {}).get("requestBody")
    if route.body_field is not None or extra_body:
        statuses |= {400, 413, 422}
    if dependant.path_params or dependant.query_params or dependant.header_params:
        statuses.add(422)
    return statuses


def _error_response(status: int) -> dict:
    response = {"description": ERROR_DESCRIPTIONS[status], "content": {"application/json": {"schema": _ERROR_REF}}}
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}}
    if status == 429:
        response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "required": True,
                                               "description": "Seconds to wait before the next request."}}
    return response


def _error_components() -> dict:
    schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.pop("$defs", {})
    components["ErrorBody"] = schema
    return components


def build_openapi(app: FastAPI) -> dict:
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes, description=app.description)
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).update(_error_components())
    components["securitySchemes"] = {BEARER: {
        "type": "http", "scheme": "bearer",
        "description": "An API key: the deployment's admin key, or one from `foundry keys create`."}}
    for route in every_route(app):
        if not getattr(route, "include_in_schema", False) or getattr(route, "dependant", None) is None:
            continue
        operations = schema["paths"].get(route.path_format, {})
        for method in route.methods:
            operation = operations.get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for status in _statuses(route):
                responses.setdefault(str(status), {"description": ERROR_DESCRIPTIONS[status]})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    responses[status] = {**_error_response(int(status)), "description": response["description"]}
            if needs_key(route.path_format):
                operation["security"] = [{BEARER: []}]
                operation["x-roles"] = roles_of(route)
    text = repr(schema["paths"])
    for name in _UNUSED_DEFAULTS:
        if f"#/components/schemas/{name}'" not in text:
            components["schemas"].pop(name, None)
    return schema


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi
