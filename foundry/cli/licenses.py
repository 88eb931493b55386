"""``foundry licenses``: the license terms onboarding accepts."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from foundry.cli.common import console, fail, open_session, print_table, validation_text
from foundry.config import get_settings
from foundry.db import session_factory
from foundry.errors import FoundryError
from foundry.licensing import service as licensing_service
from foundry.licensing.schemas import LicenseTermsCreate
from foundry.licensing.terms import parse_uses

licenses_app = typer.Typer(help="License terms onboarding accepts, and which uses each can grant.", no_args_is_help=True)


@licenses_app.command("list")
def licenses_list() -> None:
    """Registered license terms: what a manifest's license may name, and the uses each can grant."""
    with open_session() as session:
        registered = licensing_service.list_license_terms(session=session)
    print_table(("code", "name", "url", "uses it can grant", "attribution", "share-alike"),
                ((terms.code, terms.name, terms.url, ", ".join(use.value for use in sorted(terms.grantable_uses)),
                  "yes" if terms.requires_attribution else "no", "yes" if terms.share_alike else "no")
                 for terms in registered))


@licenses_app.command("add")
def licenses_add(
    code: Annotated[str, typer.Argument(help="SPDX identifier (e.g. CC-BY-NC-4.0), or LicenseRef-<name>.")],
    name: Annotated[str, typer.Option(help="Full name of the terms.")],
    url: Annotated[str, typer.Option(help="Canonical URL of the license text.")],
    uses: Annotated[str, typer.Option(help="Uses a grant under these terms may carry: base_training, "
                                           "customer_finetune, generation (separated by ;) or all.")],
    attribution: Annotated[bool, typer.Option("--attribution/--no-attribution", help="Credit required.")] = True,
    share_alike: Annotated[bool, typer.Option("--share-alike/--no-share-alike")] = False,
) -> None:
    """Register license terms so that imports accept them (only terms that really grant AI uses)."""
    try:
        body = LicenseTermsCreate(code=code, name=name, url=url, uses=sorted(parse_uses(uses)),
                                  requires_attribution=attribution, share_alike=share_alike)
    except (ValueError, ValidationError) as exc:
        raise fail(f"invalid license terms: {validation_text(exc)} [invalid_license_terms]") from None
    try:
        with session_factory(get_settings().resolved_database_url)() as session, session.begin():
            terms = licensing_service.add_license_terms(session=session, terms=body, created_by="cli")
            shown = f"{terms.code} ({', '.join(use.value for use in sorted(terms.grantable_uses))})"
    except FoundryError as exc:
        raise fail(f"{exc.message} [{exc.code}]") from None
    console.print(f"registered license terms {shown}")
