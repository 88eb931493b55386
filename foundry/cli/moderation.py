"""``foundry moderation``: the deployment's deny lists, the refusal report, contributors' named-style consent."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from foundry.cli.common import console, failing_on_domain_error, open_session, parse_uuid, print_table
from foundry.moderation import service as moderation_service
from foundry.moderation.policy import RULE_KINDS

moderation_app = typer.Typer(help="Safe prompts: deny lists, refusals, named-style consent.", no_args_is_help=True)


@moderation_app.command("deny")
def moderation_deny(
    phrase: str,
    kind: Annotated[str, typer.Option(help=f"Why it is denied: {', '.join(RULE_KINDS)}.")] = "term",
    note: Annotated[str, typer.Option(help="A note kept with the rule.")] = "",
) -> None:
    """Deny a phrase (whole words, any case) in prompts, negative prompts and custom-model captions."""
    with open_session() as session, session.begin(), failing_on_domain_error():
        rule = moderation_service.add_rule(session=session, kind=kind, phrase=phrase, note=note, created_by="cli")
    console.print(f"rule {rule.id}: {rule.kind} {rule.phrase!r} denied")


@moderation_app.command("rules")
def moderation_rules() -> None:
    """The phrases denied now."""
    with open_session() as session:
        rules = moderation_service.list_rules(session=session)
    print_table(("id", "kind", "phrase", "note"), ((str(r.id), r.kind, r.phrase, r.note) for r in rules))


@moderation_app.command("allow")
def moderation_allow(rule_id: str) -> None:
    """Retire a rule: its phrase is allowed again (its refusals stay in the report)."""
    with open_session() as session, session.begin(), failing_on_domain_error():
        rule = moderation_service.retire_rule(session=session, rule_id=parse_uuid(rule_id, "moderation rule"))
    console.print(f"rule {rule.id} retired: {rule.phrase!r} allowed again")


@moderation_app.command("report")
def moderation_report() -> None:
    """Refused requests by rule, by what matched and by tenant (JSON)."""
    with open_session() as session:
        console.print_json(json.dumps(moderation_service.refusal_report(session=session)))


@moderation_app.command("consent")
def moderation_consent(
    contributor_id: str,
    named_styles: Annotated[bool, typer.Option("--allow/--refuse", help="May prompts name them as a style?")],
) -> None:
    """Record a contributor's answer: may prompts ask for images in their style, by name?"""
    with open_session() as session, session.begin(), failing_on_domain_error():
        contributor = moderation_service.set_style_consent(
            session=session, contributor_id=parse_uuid(contributor_id, "contributor"), consent=named_styles)
    console.print(f"{contributor.display_name}: named styles {'allowed' if named_styles else 'refused'}")
