"""Signed session cookies for the artist pages, with a CSRF token per session.

The cookie holds {session id, key id, contributor id, expiry, csrf} and an HMAC-SHA256 over it
with the deployment's session secret (``FOUNDRY_SESSION_SECRET``, else a random secret kept in
``var_dir/session-secret``). The session id names a server-side row: every request re-checks that
the session was not ended (signed out) and that the API key behind it has not been revoked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

SESSION_COOKIE = "foundry_session"
LOGIN_CSRF_COOKIE = "foundry_login_csrf"
SESSION_SECONDS = 8 * 3600


@dataclass(frozen=True)
class WebSession:
    session_id: uuid.UUID
    key_id: uuid.UUID
    contributor_id: uuid.UUID
    csrf: str
    expires: int


def session_secret(settings) -> bytes:
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value().encode()
    path: Path = settings.var_dir / "session-secret"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _sign(secret: bytes, payload: bytes) -> str:
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()


def encode_session(secret: bytes, *, session_id: uuid.UUID, key_id: uuid.UUID, contributor_id: uuid.UUID,
                   expires: int) -> tuple[str, WebSession]:
    session = WebSession(session_id=session_id, key_id=key_id, contributor_id=contributor_id,
                         csrf=secrets.token_urlsafe(24), expires=expires)
    payload = base64.urlsafe_b64encode(json.dumps({
        "s": str(session_id), "k": str(key_id), "c": str(contributor_id), "x": session.csrf,
        "e": session.expires}).encode())
    return f"{payload.decode()}.{_sign(secret, payload)}", session


def decode_session(secret: bytes, cookie: str | None) -> WebSession | None:
    if not cookie or "." not in cookie:
        return None
    payload, _, signature = cookie.rpartition(".")
    if not hmac.compare_digest(_sign(secret, payload.encode()), signature):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload.encode()))
        session = WebSession(session_id=uuid.UUID(data["s"]), key_id=uuid.UUID(data["k"]),
                             contributor_id=uuid.UUID(data["c"]), csrf=data["x"], expires=int(data["e"]))
    except (ValueError, KeyError, TypeError):
        return None
    return session if session.expires > time.time() else None
