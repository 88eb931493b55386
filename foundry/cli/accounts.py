"""``foundry tenants`` and ``foundry keys``: brand customers and API keys."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from foundry.accounts import service as accounts_service
from foundry.cli.common import console, fail, parse_uuid
from foundry.config import get_settings
from foundry.db import session_factory
from foundry.errors import FoundryError
from foundry.usecases.keys import issue_api_key

tenants_app = typer.Typer(help="Brand customers.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys: random, shown once, stored hashed, revocable, scoped.", no_args_is_help=True)


@tenants_app.command("create")
def tenants_create(name: str) -> None:
    """Create a brand customer."""
    try:
        with session_factory(get_settings().resolved_database_url)() as session, session.begin():
            tenant = accounts_service.create_tenant(session=session, name=name)
    except FoundryError as exc:
        raise fail(f"{exc.message} [{exc.code}]") from None
    console.print(f"tenant [bold]{tenant.id}[/] {tenant.name}")


@tenants_app.command("list")
def tenants_list() -> None:
    """All brand customers."""
    with session_factory(get_settings().resolved_database_url)() as session:
        tenants = accounts_service.list_tenants(session=session)
    table = Table("id", "name", "created")
    for tenant in tenants:
        table.add_row(str(tenant.id), tenant.name, tenant.created_at.isoformat(timespec="seconds"))
    console.print(table)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="admin, customer or artist.")],
    tenant: Annotated[str | None, typer.Option(help="Tenant id (customer keys).")] = None,
    contributor: Annotated[str | None, typer.Option(help="Contributor id (artist keys).")] = None,
    name: Annotated[str, typer.Option(help="What the key is for.")] = "",
) -> None:
    """Issue a key. It is printed once; only its hash is kept."""
    try:
        with session_factory(get_settings().resolved_database_url)() as session, session.begin():
            key, plaintext = issue_api_key(
                session=session, role=role, name=name,
                tenant_id=parse_uuid(tenant, "tenant") if tenant else None,
                contributor_id=parse_uuid(contributor, "contributor") if contributor else None)
    except FoundryError as exc:
        raise fail(f"{exc.message} [{exc.code}]") from None
    console.print(f"key {key.id} ({key.role}) — store it now, it will not be shown again:")
    print(plaintext)


@keys_app.command("list")
def keys_list() -> None:
    """Issued keys (never their secrets)."""
    with session_factory(get_settings().resolved_database_url)() as session:
        keys = accounts_service.list_api_keys(session=session)
    table = Table("id", "prefix", "role", "name", "tenant", "contributor", "revoked")
    for key in keys:
        table.add_row(str(key.id), key.prefix, key.role, key.name, str(key.tenant_id or "-"),
                      str(key.contributor_id or "-"), key.revoked_at.isoformat() if key.revoked_at else "-")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key at once; requests with it get 401 from now on."""
    try:
        with session_factory(get_settings().resolved_database_url)() as session, session.begin():
            key = accounts_service.revoke_api_key(session=session, key_id=parse_uuid(key_id, "API key"))
    except FoundryError as exc:
        raise fail(exc.message) from None
    console.print(f"key {key.id} revoked at {key.revoked_at.isoformat()}")
