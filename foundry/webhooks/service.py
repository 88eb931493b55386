"""Webhook endpoints, the outbox of events, and the record of every delivery attempt.

The edge owns the transaction: these functions only ``flush``. Events are recorded in the
transaction of the change they report; sending is the use case's (``foundry.usecases.webhooks``).
"""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from foundry.accounts import service as accounts_service
from foundry.db import flushed, utcnow
from foundry.errors import Conflict, InvalidInput, NotFound
from foundry.webhooks.models import DELIVERED, FAILED, PENDING, SENDING, WebhookDelivery, WebhookEndpoint
from foundry.webhooks.policy import EVENT_TYPES, TEST_EVENT, address_problem, retry_delay, url_problem

MAX_ENDPOINTS_PER_TENANT = 16


def create_endpoint(*, session: Session, tenant_id: uuid.UUID, url: str, events: list[str] | None,
                    description: str = "", created_by: str, allow_private: bool) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (returned this once)."""
    problem = url_problem(url)
    if problem is None:
        problem = _literal_address_problem(url, allow_private=allow_private)
    if problem is not None:
        raise InvalidInput(f"url: {problem}", code="webhook_url_invalid")
    events = list(dict.fromkeys(events or EVENT_TYPES))
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise InvalidInput(f"events: unknown event types {unknown}; use {list(EVENT_TYPES)}", code="validation_error")
    accounts_service.get_tenant(session=session, tenant_id=tenant_id)
    if len(list_endpoints(session=session, tenant_id=tenant_id)) >= MAX_ENDPOINTS_PER_TENANT:
        raise Conflict(f"a tenant may have at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints; delete one first",
                       code="webhook_limit_reached")
    secret = "whsec_" + secrets.token_urlsafe(32)
    endpoint = flushed(session, WebhookEndpoint(tenant_id=tenant_id, url=url, secret=secret, events=events,
                                                description=description, created_by=created_by[:200]))
    return endpoint, secret


def _literal_address_problem(url: str, *, allow_private: bool) -> str | None:
    """A host written as an address (or ``localhost``) is judged at once; names are judged when sent."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return address_problem(host, allow_private=allow_private)


def get_endpoint(*, session: Session, endpoint_id: uuid.UUID, tenant_id: uuid.UUID | None) -> WebhookEndpoint:
    """An endpoint of ``tenant_id`` (any tenant's when None); another tenant's is not found."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or (tenant_id is not None and endpoint.tenant_id != tenant_id):
        raise NotFound(f"webhook endpoint {endpoint_id} does not exist", code="webhook_not_found")
    return endpoint


def raise_disabled(endpoint: WebhookEndpoint) -> None:
    raise NotFound(f"webhook endpoint {endpoint.id} was deleted", code="webhook_not_found")


def list_endpoints(*, session: Session, tenant_id: uuid.UUID | None, include_disabled: bool = False
                   ) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    if tenant_id is not None:
        query = query.where(WebhookEndpoint.tenant_id == tenant_id)
    if not include_disabled:
        query = query.where(WebhookEndpoint.disabled_at.is_(None))
    return list(session.scalars(query))


def disable_endpoint(*, session: Session, endpoint_id: uuid.UUID, tenant_id: uuid.UUID | None) -> WebhookEndpoint:
    """Stop sending to an endpoint (its delivery log is kept); deliveries still waiting are failed."""
    endpoint = get_endpoint(session=session, endpoint_id=endpoint_id, tenant_id=tenant_id)
    if endpoint.disabled_at is None:
        endpoint.disabled_at = utcnow()
        session.execute(update(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id,
                                                      WebhookDelivery.status.in_((PENDING, SENDING)))
                        .values(status=FAILED, last_error="the endpoint was deleted", next_attempt_at=None))
    session.flush()
    return endpoint


def record_event(*, session: Session, tenant_id: uuid.UUID | None, event_type: str, data: dict,
                 endpoint_id: uuid.UUID | None = None) -> list[WebhookDelivery]:
    """One event, queued for every active endpoint of the tenant that subscribed to it (only
    ``endpoint_id`` when given), in the caller's transaction. Nothing for events without a tenant."""
    if tenant_id is None:
        return []
    if event_type not in EVENT_TYPES and event_type != TEST_EVENT:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    now = utcnow()
    event_id = uuid.uuid4()
    payload = {"id": str(event_id), "type": event_type, "created_at": now.isoformat(), "tenant_id": str(tenant_id),
               "data": data}
    deliveries = []
    for endpoint in list_endpoints(session=session, tenant_id=tenant_id):
        if endpoint_id is not None and endpoint.id != endpoint_id:
            continue
        if event_type != TEST_EVENT and event_type not in endpoint.events:
            continue
        deliveries.append(WebhookDelivery(endpoint_id=endpoint.id, tenant_id=tenant_id, event_id=event_id,
                                          event_type=event_type, payload=payload, status=PENDING,
                                          next_attempt_at=now))
    session.add_all(deliveries)
    session.flush()
    return deliveries


def claim_due(*, session: Session, now: datetime, lease: timedelta, limit: int = 50) -> list[uuid.UUID]:
    """Deliveries due now, claimed for one sender: waiting ones whose time has come, and ones whose
    sender let its claim lapse. A conditional UPDATE per row, so two senders never send one twice at once."""
    due = or_(and_(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now),
              and_(WebhookDelivery.status == SENDING, WebhookDelivery.claimed_until < now))
    candidates = session.scalars(select(WebhookDelivery.id).where(due)
                                 .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit)).all()
    claimed = []
    for delivery_id in candidates:
        result = session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id, due)
                                 .values(status=SENDING, claimed_until=now + lease))
        if result.rowcount == 1:
            claimed.append(delivery_id)
    return claimed


def claim(*, session: Session, delivery_id: uuid.UUID, now: datetime, lease: timedelta) -> None:
    """Claim one delivery just recorded, to send it at once."""
    session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
                    .values(status=SENDING, claimed_until=now + lease))


def record_attempt(*, session: Session, delivery_id: uuid.UUID, status_code: int | None, error: str | None,
                   delivered: bool, retry_base: timedelta, now: datetime | None = None,
                   final: bool = False) -> WebhookDelivery:
    """One attempt's outcome: delivered, retried later (exponential back-off) or, after the last (or a
    ``final`` one: its endpoint was deleted), failed."""
    now = now or utcnow()
    delivery = session.get(WebhookDelivery, delivery_id)
    delivery.attempts += 1
    delivery.last_attempt_at, delivery.last_status_code = now, status_code
    delivery.last_error = None if delivered else (error or f"answered {status_code}")[:2000]
    delivery.claimed_until = None
    if delivered:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = DELIVERED, now, None
    else:
        delay = None if final else retry_delay(delivery.attempts, retry_base)
        delivery.status = PENDING if delay is not None else FAILED
        delivery.next_attempt_at = now + delay if delay is not None else None
    session.flush()
    return delivery


def list_deliveries(*, session: Session, tenant_id: uuid.UUID | None, endpoint_id: uuid.UUID | None = None,
                    status: str | None = None, limit: int = 50, offset: int = 0) -> list[WebhookDelivery]:
    """The delivery log, newest first."""
    query = select(WebhookDelivery).order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
    if tenant_id is not None:
        query = query.where(WebhookDelivery.tenant_id == tenant_id)
    if endpoint_id is not None:
        get_endpoint(session=session, endpoint_id=endpoint_id, tenant_id=tenant_id)
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    return list(session.scalars(query.limit(limit).offset(offset)))
