"""Webhook routes: a tenant's endpoints, a test event, and the delivery log (customer keys: their own
tenant's; admin keys: any tenant's)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from api.deps import CustomerOrAdmin, SessionDep, SettingsDep, tenant_for
from api.errors import error_responses
from api.params import Offset, PageLimit
from foundry.usecases.webhooks import send_test_event
from foundry.webhooks import service as webhook_service
from foundry.webhooks.schemas import (
    DeliveryStatus,
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryRead,
    WebhookRead,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookCreated,
             responses=error_responses(404, 409, 422, s404="The tenant does not exist.",
                                       s409="The tenant has its most endpoints (webhook_limit_reached).",
                                       s422="An unusable URL (webhook_url_invalid) or unknown event types."))
def create_webhook(principal: CustomerOrAdmin, session: SessionDep, settings: SettingsDep,
                   body: WebhookCreate) -> WebhookCreated:
    """Register an endpoint; the answer carries its signing secret, shown this once."""
    tenant_id = tenant_for(principal, body.tenant_id)
    with session.begin():
        endpoint, secret = webhook_service.create_endpoint(
            session=session, tenant_id=tenant_id, url=body.url, events=body.events,
            description=body.description, created_by=f"api:{principal.name}",
            allow_private=settings.webhook_allow_private_targets)
        return WebhookCreated(**WebhookRead.model_validate(endpoint).model_dump(), secret=secret)


@router.get("", response_model=list[WebhookRead])
def list_webhooks(principal: CustomerOrAdmin, session: SessionDep) -> list[WebhookRead]:
    endpoints = webhook_service.list_endpoints(session=session, tenant_id=principal.tenant_scope)
    return [WebhookRead.model_validate(e) for e in endpoints]


@router.get("/deliveries", response_model=list[WebhookDeliveryRead], responses=error_responses(404))
def list_deliveries(principal: CustomerOrAdmin, session: SessionDep,
                    endpoint_id: Annotated[uuid.UUID | None, Query(description="Only this endpoint's.")] = None,
                    status: Annotated[DeliveryStatus | None, Query(description="Only deliveries in this state.")] = None,
                    limit: PageLimit = 50, offset: Offset = 0) -> list[WebhookDeliveryRead]:
    """Every attempt's outcome, newest first: status code or error, attempts, the next try."""
    deliveries = webhook_service.list_deliveries(session=session, tenant_id=principal.tenant_scope,
                                                 endpoint_id=endpoint_id, status=status, limit=limit, offset=offset)
    return [WebhookDeliveryRead.model_validate(d) for d in deliveries]


@router.get("/{endpoint_id:uuid}", response_model=WebhookRead, responses=error_responses(404))
def get_webhook(principal: CustomerOrAdmin, session: SessionDep, endpoint_id: uuid.UUID) -> WebhookRead:
    return WebhookRead.model_validate(webhook_service.get_endpoint(session=session, endpoint_id=endpoint_id,
                                                                   tenant_id=principal.tenant_scope))


@router.delete("/{endpoint_id:uuid}", response_model=WebhookRead, responses=error_responses(404))
def delete_webhook(principal: CustomerOrAdmin, session: SessionDep, endpoint_id: uuid.UUID) -> WebhookRead:
    """Stop sending to the endpoint; its delivery log is kept."""
    with session.begin():
        return WebhookRead.model_validate(webhook_service.disable_endpoint(
            session=session, endpoint_id=endpoint_id, tenant_id=principal.tenant_scope))


@router.post("/{endpoint_id:uuid}/test", response_model=WebhookDeliveryRead, responses=error_responses(404))
def test_webhook(principal: CustomerOrAdmin, settings: SettingsDep, endpoint_id: uuid.UUID) -> WebhookDeliveryRead:
    """Send a ``webhook.test`` event now; the answer is the delivery after its first attempt."""
    return WebhookDeliveryRead.model_validate(send_test_event(settings, endpoint_id=endpoint_id,
                                                              tenant_id=principal.tenant_scope))
