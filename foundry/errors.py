"""Domain errors. Each carries a stable machine-readable ``code``; the API maps them to HTTP."""

from __future__ import annotations

from typing import Any


class FoundryError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "foundry_error"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}


class NotFound(FoundryError):
    code = "not_found"


class InvalidInput(FoundryError):
    code = "invalid_input"


class Conflict(FoundryError):
    code = "conflict"


class PermissionDenied(FoundryError):
    code = "permission_denied"


class Unavailable(FoundryError):
    """The deployment cannot serve this now (not configured, capacity); the request itself was fine."""

    code = "unavailable"
