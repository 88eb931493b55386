"""Pure rules of webhooks: which events exist, how a request is signed and checked, when to retry,
and which targets a delivery may reach."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from datetime import datetime, timedelta
from urllib.parse import urlsplit

EVENT_TYPES = (
    "generation.succeeded",
    "generation.failed",
    "custom_model.progress",
    "custom_model.succeeded",
    "custom_model.failed",
)
TEST_EVENT = "webhook.test"
"""Sent on request (``POST /v1/webhooks/{id}/test``) whatever the endpoint subscribed to."""

SIGNATURE_HEADER = "Foundry-Signature"
EVENT_ID_HEADER = "Foundry-Event-Id"
EVENT_TYPE_HEADER = "Foundry-Event-Type"
REPLAY_WINDOW = timedelta(minutes=5)
"""A receiver refuses a signature older (or newer) than this: a captured request cannot be replayed later."""

MAX_ATTEMPTS = 8
MAX_RETRY_DELAY = timedelta(hours=1)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "t." + body>``.

    The timestamp is inside the MAC, so a receiver that checks the window refuses replays."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, *, now: datetime, window: timedelta = REPLAY_WINDOW) -> bool:
    """What a receiver does with a delivery: the MAC matches and its timestamp is inside the window."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now.timestamp() - timestamp) > window.total_seconds():
        return False
    expected = sign(secret, timestamp, body).split(",", 1)[1].removeprefix("v1=")
    return hmac.compare_digest(expected, parts.get("v1", ""))


def retry_delay(attempts: int, base: timedelta) -> timedelta | None:
    """How long to wait after the ``attempts``-th failed attempt (exponential: base, 2 base, 4 base...,
    at most an hour); None once the delivery has had its last attempt."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return min(base * 2 ** (attempts - 1), MAX_RETRY_DELAY)


def delivered(status_code: int) -> bool:
    """Any 2xx answer delivers; anything else (and no answer) is retried."""
    return 200 <= status_code < 300


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook endpoint, or None."""
    if len(url) > 2000:
        return "the URL is longer than 2,000 characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError as exc:
        return f"the URL cannot be parsed: {exc}"
    if parts.scheme not in ("https", "http"):
        return "the URL must start with https:// (or http://)"
    if not parts.hostname:
        return "the URL names no host"
    if parts.username or parts.password:
        return "the URL must not carry credentials: the signature authenticates the foundry"
    if parts.fragment:
        return "the URL must not have a #fragment"
    return None


def address_problem(address: str, *, allow_private: bool) -> str | None:
    """Why a delivery must not connect to ``address`` (an IP the endpoint's host resolved to), or None.

    Loopback, private, link-local (cloud metadata) and other non-public addresses are refused unless
    the deployment allows them, so a tenant cannot use webhooks to reach the foundry's own network."""
    ip = ipaddress.ip_address(address)
    if allow_private or ip.is_global:
        return None
    return f"{address} is not a public address (FOUNDRY_WEBHOOK_ALLOW_PRIVATE_TARGETS allows it)"
