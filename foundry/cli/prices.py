"""``foundry prices``: prices per image."""

from __future__ import annotations

from typing import Annotated

import typer

from foundry.cli.common import console, fail, open_session, parse_uuid, print_table
from foundry.config import get_settings
from foundry.db import session_factory
from foundry.errors import FoundryError
from foundry.pricing import service as pricing_service

prices_app = typer.Typer(help="Prices per image, per model and tenant.", no_args_is_help=True)


@prices_app.command("set")
def prices_set(
    unit_price: Annotated[int, typer.Option(help="Price of one image in minor units (cents).")],
    currency: Annotated[str, typer.Option(help="ISO 4217 code.")] = "USD",
    pool_share_bps: Annotated[int, typer.Option(help="Contributor pool share of each charge, basis points.")] = 5000,
    finetune_share_bps: Annotated[int, typer.Option(help="Layered models: fine-tune licensors' part.")] = 5000,
    training_step_price: Annotated[int, typer.Option(help="A custom model's training step on this base, "
                                                          "minor units.")] = 0,
    model: Annotated[str | None, typer.Option(help="Only for this model id.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only for this tenant id.")] = None,
) -> None:
    """Set the price for a (model, tenant) scope; the rule it replaces is retired."""
    try:
        with session_factory(get_settings().resolved_database_url)() as session, session.begin():
            rule = pricing_service.set_price(
                session=session, unit_price=unit_price, currency=currency, pool_share_bps=pool_share_bps,
                finetune_share_bps=finetune_share_bps, training_step_price=training_step_price, created_by="cli",
                model_id=parse_uuid(model, "model") if model else None,
                tenant_id=parse_uuid(tenant, "tenant") if tenant else None)
    except FoundryError as exc:
        raise fail(f"{exc.message} [{exc.code}]") from None
    console.print(f"price rule {rule.id}: {rule.unit_price} {rule.currency} per image, "
                  f"pool {rule.pool_share_bps / 100:g}%")


@prices_app.command("list")
def prices_list() -> None:
    """Active price rules, most general first."""
    with open_session() as session:
        rules = pricing_service.active_rules(session=session)
    print_table(("id", "model", "tenant", "price", "pool", "fine-tune share"),
                ((str(rule.id), str(rule.model_id or "any"), str(rule.tenant_id or "any"),
                  f"{rule.unit_price} {rule.currency}", f"{rule.pool_share_bps / 100:g}%",
                  f"{rule.finetune_share_bps / 100:g}%") for rule in rules))
