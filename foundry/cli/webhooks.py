"""``foundry webhooks``: a tenant's endpoints, their delivery log, and sending what is due."""

from __future__ import annotations

from typing import Annotated

import typer

from foundry.cli.common import console, failing_on_domain_error, open_session, parse_uuid, print_table
from foundry.config import get_settings
from foundry.usecases.webhooks import deliver_due
from foundry.webhooks import service as webhook_service
from foundry.webhooks.policy import EVENT_TYPES

webhooks_app = typer.Typer(help="Webhook endpoints of tenants, and their deliveries.", no_args_is_help=True)


@webhooks_app.command("add")
def webhooks_add(
    tenant: Annotated[str, typer.Option(help="The tenant id the endpoint is for.")],
    url: Annotated[str, typer.Option(help="https:// address that receives signed POSTs.")],
    event: Annotated[list[str] | None, typer.Option(help=f"An event type to send (repeatable; default all: "
                                                         f"{', '.join(EVENT_TYPES)}).")] = None,
    description: Annotated[str, typer.Option(help="A note for the tenant's own records.")] = "",
) -> None:
    """Register an endpoint and print its signing secret (shown this once)."""
    settings = get_settings()
    with open_session() as session, session.begin(), failing_on_domain_error():
        endpoint, secret = webhook_service.create_endpoint(
            session=session, tenant_id=parse_uuid(tenant, "tenant"), url=url, events=event, description=description,
            created_by="cli", allow_private=settings.webhook_allow_private_targets)
    console.print(f"webhook endpoint [bold]{endpoint.id}[/] for {', '.join(endpoint.events)}\n"
                  f"signing secret (shown once): {secret}")


@webhooks_app.command("list")
def webhooks_list(tenant: Annotated[str | None, typer.Option(help="Only this tenant's.")] = None) -> None:
    """Active endpoints."""
    with open_session() as session:
        endpoints = webhook_service.list_endpoints(session=session,
                                                   tenant_id=parse_uuid(tenant, "tenant") if tenant else None)
    print_table(("id", "tenant", "url", "events"),
                ((str(e.id), str(e.tenant_id), e.url, ", ".join(e.events)) for e in endpoints))


@webhooks_app.command("remove")
def webhooks_remove(endpoint_id: str) -> None:
    """Stop sending to an endpoint (its delivery log is kept)."""
    with open_session() as session, session.begin(), failing_on_domain_error():
        endpoint = webhook_service.disable_endpoint(session=session, endpoint_id=parse_uuid(endpoint_id, "webhook"),
                                                    tenant_id=None)
    console.print(f"webhook endpoint {endpoint.id} removed")


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's.")] = None,
    status: Annotated[str | None, typer.Option(help="pending, sending, delivered or failed.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
) -> None:
    """The delivery log, newest first."""
    with open_session() as session:
        deliveries = webhook_service.list_deliveries(
            session=session, tenant_id=parse_uuid(tenant, "tenant") if tenant else None, status=status, limit=limit)
    print_table(("id", "event", "status", "attempts", "last answer", "next attempt"),
                ((str(d.id), d.event_type, d.status, str(d.attempts),
                  str(d.last_status_code) if d.last_status_code else (d.last_error or "-")[:60],
                  f"{d.next_attempt_at:%Y-%m-%d %H:%M:%S}" if d.next_attempt_at else "-") for d in deliveries))


@webhooks_app.command("deliver")
def webhooks_deliver() -> None:
    """Send every delivery that is due now, once (a worker does this every FOUNDRY_WEBHOOK_POLL_S)."""
    sent = deliver_due(get_settings())
    console.print(f"{sent} webhook deliveries attempted")
