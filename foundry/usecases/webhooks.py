"""Sending webhooks: claim what is due, POST it signed, record the answer, retry with back-off.

The worker runs :func:`deliver_due` on a timer (and ``foundry webhooks deliver`` runs it once);
``POST /v1/webhooks/{id}/test`` sends one event at once. The HTTP client is handed in (``Post``), so
tests and other transports can stand in for it; :func:`http_post` is the real one.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

import httpx

from foundry.config import Settings
from foundry.db import session_factory, utcnow
from foundry.webhooks import service as webhook_service
from foundry.webhooks.models import WebhookDelivery, WebhookEndpoint
from foundry.webhooks.policy import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TEST_EVENT,
    address_problem,
    delivered,
    sign,
)

logger = logging.getLogger(__name__)

Post = Callable[[str, bytes, dict[str, str]], int]
"""(url, body, headers) -> the HTTP status answered; raises when nothing was answered."""
CLAIM_LEASE = timedelta(minutes=2)
"""A sender that died mid-send lets its deliveries go after this long."""
SEND_TIMEOUT_S = 10.0


class TargetRefused(Exception):
    """The endpoint's host resolves to an address deliveries may not reach."""


def http_post(settings: Settings) -> Post:
    """POST with httpx, after checking every address the host resolves to (no redirects followed)."""

    def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        for *_, address in socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP):
            problem = address_problem(address[0], allow_private=settings.webhook_allow_private_targets)
            if problem is not None:
                raise TargetRefused(problem)
        with httpx.Client(timeout=SEND_TIMEOUT_S, follow_redirects=False) as client:
            return client.post(url, content=body, headers=headers).status_code

    return post


def signed_request(endpoint: WebhookEndpoint, delivery: WebhookDelivery, now: float) -> tuple[bytes, dict[str, str]]:
    """The body (canonical JSON of the event) and headers of one attempt, signed at ``now``."""
    body = json.dumps(delivery.payload, sort_keys=True, separators=(",", ":")).encode()
    return body, {"Content-Type": "application/json", "User-Agent": "licensed-image-foundry-webhooks",
                  SIGNATURE_HEADER: sign(endpoint.secret, int(now), body), EVENT_ID_HEADER: str(delivery.event_id),
                  EVENT_TYPE_HEADER: delivery.event_type}


def attempt(sessions, settings: Settings, delivery_id: uuid.UUID, post: Post) -> WebhookDelivery:
    """Send one claimed delivery once and record what happened."""
    with sessions() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
        session.expunge_all()
    status_code, error = None, None
    if endpoint.disabled_at is not None:
        error = "the endpoint was deleted"
    else:
        body, headers = signed_request(endpoint, delivery, time.time())
        try:
            status_code = post(endpoint.url, body, headers)
        except TargetRefused as exc:
            error = f"refused: {exc}"
        except (httpx.HTTPError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
    with sessions() as session, session.begin():
        recorded = webhook_service.record_attempt(
            session=session, delivery_id=delivery_id, status_code=status_code, error=error,
            delivered=status_code is not None and delivered(status_code),
            retry_base=timedelta(seconds=settings.webhook_retry_base_s), final=endpoint.disabled_at is not None)
        session.expunge(recorded)
    return recorded


def deliver_due(settings: Settings, post: Post | None = None, *, limit: int = 50) -> int:
    """Send every delivery that is due (claimed first, so concurrent senders share the work): how many."""
    sessions = session_factory(settings.resolved_database_url)
    post = post or http_post(settings)
    with sessions() as session, session.begin():
        claimed = webhook_service.claim_due(session=session, now=utcnow(), lease=CLAIM_LEASE, limit=limit)
    for delivery_id in claimed:
        try:
            attempt(sessions, settings, delivery_id, post)
        except Exception:  # one bad delivery must not stop the others; its claim lapses and it is retried
            logger.exception("webhook delivery %s failed to be recorded", delivery_id)
    return len(claimed)


def send_test_event(settings: Settings, *, endpoint_id: uuid.UUID, tenant_id: uuid.UUID | None,
                    post: Post | None = None) -> WebhookDelivery:
    """Record a ``webhook.test`` event for one endpoint and send it now (failures are retried as usual)."""
    sessions = session_factory(settings.resolved_database_url)
    with sessions() as session, session.begin():
        endpoint = webhook_service.get_endpoint(session=session, endpoint_id=endpoint_id, tenant_id=tenant_id)
        if endpoint.disabled_at is not None:
            webhook_service.raise_disabled(endpoint)
        [delivery] = webhook_service.record_event(session=session, tenant_id=endpoint.tenant_id, event_type=TEST_EVENT,
                                                  data={"message": "a test event from the foundry"},
                                                  endpoint_id=endpoint.id)
        delivery_id = delivery.id
        webhook_service.claim(session=session, delivery_id=delivery_id, now=utcnow(), lease=CLAIM_LEASE)
    return attempt(sessions, settings, delivery_id, post or http_post(settings))
