"""Screening text against the deployment's moderation rules, and the record of refusals.

The edge owns the transaction: these functions only ``flush``.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundry.catalog.models import Contributor
from foundry.db import flushed, get_or_raise, utcnow
from foundry.errors import Conflict, InvalidInput
from foundry.moderation.models import ModerationRule, PromptRefusal
from foundry.moderation.policy import (
    NAMED_STYLE_RULE,
    RULE_KINDS,
    STYLE_NAME_MODES,
    contains_phrase,
    normalize,
    resolve_style,
    style_names,
)

STYLE_FIELDS = ("prompt", "caption")
"""Texts whose "in the style of" asks for a style; a negative prompt only names what to avoid."""


class PromptRefused(InvalidInput):
    """A text matched a rule: 422 ``prompt_refused`` naming the rule, the field and what matched."""

    def __init__(self, *, rule: str, field: str, matched: str, rule_id: uuid.UUID | None = None, reason: str):
        super().__init__(f"{field}: refused by the {rule.replace('_', ' ')} rule ({reason})", code="prompt_refused",
                         details={"rule": rule, "rule_id": str(rule_id) if rule_id else None, "field": field,
                                  "matched": matched})
        self.rule, self.rule_id, self.field, self.matched = rule, rule_id, field, matched


@dataclass(frozen=True)
class Screening:
    """A text that passed: the contributors it names as a style (each agreed to be named)."""

    named_contributor_ids: tuple[uuid.UUID, ...] = field(default=())


def add_rule(*, session: Session, kind: str, phrase: str, note: str = "", created_by: str) -> ModerationRule:
    if kind not in RULE_KINDS:
        raise InvalidInput(f"kind: use one of {list(RULE_KINDS)}", code="validation_error")
    if not normalize(phrase):
        raise InvalidInput("phrase: it has no letters or digits to match", code="validation_error")
    if any(normalize(rule.phrase) == normalize(phrase) for rule in list_rules(session=session)):
        raise Conflict(f"{phrase!r} is already denied", code="moderation_rule_exists")
    return flushed(session, ModerationRule(kind=kind, phrase=phrase.strip(), note=note, created_by=created_by[:200]))


def list_rules(*, session: Session, include_retired: bool = False) -> list[ModerationRule]:
    query = select(ModerationRule).order_by(ModerationRule.kind, ModerationRule.phrase, ModerationRule.id)
    if not include_retired:
        query = query.where(ModerationRule.retired_at.is_(None))
    return list(session.scalars(query))


def retire_rule(*, session: Session, rule_id: uuid.UUID) -> ModerationRule:
    rule = get_or_raise(session, ModerationRule, rule_id, code="moderation_rule_not_found", what="moderation rule")
    rule.retired_at = rule.retired_at or utcnow()
    session.flush()
    return rule


def screen(*, session: Session, texts: dict[str, str], style_mode: str = "strict") -> Screening:
    """Check each named text (``prompt``, ``negative_prompt``, ``caption``...) against the deny lists, and
    every style it asks for against the contributors' consent. Raises :class:`PromptRefused`."""
    if style_mode not in STYLE_NAME_MODES:
        raise ValueError(f"unknown style-name mode {style_mode!r}")
    rules = list_rules(session=session)
    for name, text in texts.items():
        normalized = normalize(text)
        for rule in rules:
            if contains_phrase(normalized, rule.phrase, text_normalized=True):
                raise PromptRefused(rule=rule.kind, rule_id=rule.id, field=name, matched=rule.phrase,
                                    reason=f"{rule.phrase!r} may not be used")
    named: list[uuid.UUID] = []
    styles = [(name, style) for name, text in texts.items() if name in STYLE_FIELDS for style in style_names(text)]
    if styles:
        consenting, others = _contributor_names(session)
        for name, style in styles:
            resolved = resolve_style(style, consenting)
            if resolved.contributor_id is not None:
                named.append(resolved.contributor_id)
            elif style_mode == "strict" or resolve_style(style, others).contributor_id is not None:
                raise PromptRefused(rule=NAMED_STYLE_RULE, field=name, matched=style[:300],
                                    reason="a style may name only a contributor who agreed to be named")
    return Screening(tuple(dict.fromkeys(named)))


def _contributor_names(session: Session) -> tuple[dict[str, uuid.UUID], dict[str, uuid.UUID]]:
    """Normalised display names of the contributors who agreed to be named, and of the others."""
    consenting: dict[str, uuid.UUID] = {}
    others: dict[str, uuid.UUID] = {}
    for contributor_id, display_name, consent in session.execute(
            select(Contributor.id, Contributor.display_name, Contributor.style_name_consent)):
        if normalize(display_name):
            (consenting if consent else others)[normalize(display_name)] = contributor_id
    return consenting, others


def record_refusal(*, session: Session, refused: PromptRefused, tenant_id: uuid.UUID | None,
                   api_key_id: uuid.UUID | None) -> PromptRefusal:
    return flushed(session, PromptRefusal(tenant_id=tenant_id, api_key_id=api_key_id, rule=refused.rule,
                                          rule_id=refused.rule_id, field=refused.field,
                                          matched=refused.matched[:300]))


def refusal_report(*, session: Session) -> dict:
    """How many requests were refused, by rule, by matched phrase and by tenant."""
    rows = session.execute(select(PromptRefusal.rule, PromptRefusal.matched, PromptRefusal.tenant_id)).all()
    return {"refusals": len(rows),
            "by_rule": dict(Counter(rule for rule, _, _ in rows).most_common()),
            "by_match": dict(Counter(matched for _, matched, _ in rows).most_common(50)),
            "by_tenant": {str(tenant): count for tenant, count in Counter(t for _, _, t in rows).most_common()}}


def set_style_consent(*, session: Session, contributor_id: uuid.UUID, consent: bool) -> Contributor:
    """A contributor agrees (or no longer agrees) to be named as a style in prompts."""
    contributor = get_or_raise(session, Contributor, contributor_id, code="contributor_not_found", what="contributor")
    contributor.style_name_consent = consent
    session.flush()
    return contributor
