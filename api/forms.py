"""Multipart uploads read only after a route's authentication and role checks.

FastAPI parses ``File``/``Form`` parameters before it resolves any dependency, so a route that
declared them would read a whole upload before learning that its caller may not use it. Upload
routes therefore declare no body parameters: a dependency listed after the role check reads the
form with these helpers, and ``openapi_extra`` documents the body.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import FormData, UploadFile

from api.errors import ApiError


async def read_form(request: Request, *, max_files: int, max_fields: int) -> FormData:
    """The request's multipart form (files spooled to disk past 1 MiB; the middleware bounds the total)."""
    return await request.form(max_files=max_files, max_fields=max_fields)


class FormFields:
    """Typed reads of a parsed form, collecting every problem into one 422 like FastAPI's own."""

    def __init__(self, form: FormData):
        self.form = form
        self.errors: list[dict] = []

    def problem(self, name: str, kind: str, message: str, value=None) -> None:
        self.errors.append({"loc": ("body", name), "type": kind, "msg": message, "input": value})

    def file(self, name: str, *, required: bool = True) -> UploadFile | None:
        value = self.form.get(name)
        if value is None:
            if required:
                self.problem(name, "missing", "Field required")
            return None
        if not isinstance(value, UploadFile):
            self.problem(name, "value_error", "Expected a file upload")
            return None
        return value

    def choice(self, name: str, choices: Iterable[str]) -> str | None:
        allowed = tuple(choices)
        value = self.form.get(name)
        if value is None:
            self.problem(name, "missing", "Field required")
            return None
        if not isinstance(value, str) or value not in allowed:
            self.problem(name, "literal_error", f"Input should be {' or '.join(repr(c) for c in allowed)}",
                          value if isinstance(value, str) else None)
            return None
        return value

    def optional_uuid(self, name: str) -> uuid.UUID | None:
        value = self.form.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            self.problem(name, "uuid_type", "Input should be a UUID string")
            return None
        try:
            return uuid.UUID(value)
        except ValueError:
            self.problem(name, "uuid_parsing", "Input should be a valid UUID", value)
            return None

    def check(self) -> None:
        if self.errors:
            raise RequestValidationError(self.errors)


def multipart_body(properties: dict[str, dict], required: list[str]) -> dict:
    """``openapi_extra`` documenting a multipart request body the route reads itself."""
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": properties, "required": required}}}}}


def file_property(description: str) -> dict:
    return {"type": "string", "format": "binary", "description": description}


def save_upload(upload: UploadFile, target: Path, budget: int) -> int:
    """Copy an upload to disk, refusing it (413) once it passes ``budget`` bytes: the bytes written."""
    written = 0
    with target.open("wb") as handle:
        while block := upload.file.read(1 << 20):
            written += len(block)
            if written > budget:
                raise ApiError(413, "request_too_large", f"uploads are limited to {budget} bytes")
            handle.write(block)
    return written
