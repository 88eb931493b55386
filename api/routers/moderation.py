"""Safe-prompt routes: the deployment's deny lists and refusal report (admin), and a contributor's
consent to be named as a style (the artist, or an admin for them)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from api.deps import AdminPrincipal, ArtistContributor, SessionDep
from api.errors import error_responses
from foundry.moderation import service as moderation_service
from foundry.moderation.schemas import ModerationRuleCreate, ModerationRuleRead, StyleConsent

router = APIRouter(prefix="/v1", tags=["moderation"])


@router.post("/moderation/rules", status_code=status.HTTP_201_CREATED, response_model=ModerationRuleRead,
             responses=error_responses(409, s409="The phrase is already denied (moderation_rule_exists)."))
def add_rule(principal: AdminPrincipal, session: SessionDep, body: ModerationRuleCreate) -> ModerationRuleRead:
    """Deny a phrase in every prompt, negative prompt and fine-tune caption from now on."""
    with session.begin():
        return ModerationRuleRead.model_validate(moderation_service.add_rule(
            session=session, kind=body.kind, phrase=body.phrase, note=body.note, created_by=f"api:{principal}"))


@router.get("/moderation/rules", response_model=list[ModerationRuleRead])
def list_rules(_principal: AdminPrincipal, session: SessionDep) -> list[ModerationRuleRead]:
    return [ModerationRuleRead.model_validate(r) for r in moderation_service.list_rules(session=session)]


@router.delete("/moderation/rules/{rule_id}", response_model=ModerationRuleRead, responses=error_responses(404))
def retire_rule(_principal: AdminPrincipal, session: SessionDep, rule_id: uuid.UUID) -> ModerationRuleRead:
    """Stop denying a phrase; the refusals it caused stay in the report."""
    with session.begin():
        return ModerationRuleRead.model_validate(moderation_service.retire_rule(session=session, rule_id=rule_id))


@router.get("/reports/moderation")
def moderation_report(_principal: AdminPrincipal, session: SessionDep) -> dict:
    """Refused requests: how many, by rule, by what matched, by tenant."""
    return moderation_service.refusal_report(session=session)


def _consent(session, contributor_id: uuid.UUID, body: StyleConsent) -> dict:
    with session.begin():
        contributor = moderation_service.set_style_consent(session=session, contributor_id=contributor_id,
                                                           consent=body.named_styles)
        return {"contributor_id": str(contributor.id), "display_name": contributor.display_name,
                "named_styles": contributor.style_name_consent}


@router.put("/me/style-consent", responses=error_responses(403, s403="Only an artist key speaks for itself."),
            openapi_extra={"x-roles": ["artist"]})
def set_my_style_consent(contributor_id: ArtistContributor, session: SessionDep, body: StyleConsent) -> dict:
    """Agree (or stop agreeing) that prompts may ask for images in my style, by my display name."""
    return _consent(session, contributor_id, body)


@router.put("/contributors/{contributor_id}/style-consent", responses=error_responses(404))
def set_style_consent(_principal: AdminPrincipal, session: SessionDep, contributor_id: uuid.UUID,
                      body: StyleConsent) -> dict:
    return _consent(session, contributor_id, body)
