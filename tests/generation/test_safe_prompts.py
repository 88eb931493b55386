"""Safe prompts, end to end: deny lists refuse prompts, negative prompts and fine-tune captions with
nothing charged; a style may name only a contributor who agreed, and that contributor is paid for it."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from foundry.accounts import service as accounts_service
from foundry.catalog.models import Contributor
from foundry.generation.models import Generation
from foundry.moderation.models import PromptRefusal
from tests.generation.conftest import ADMIN
from worker.attribution import audit_generation


def generate(client, customer, served_model, **body):
    return client.post("/v1/generations", headers=customer.headers,
                       json={"model_id": str(served_model), "seed": 2, "steps": 2, **body})


def refusal_of(answer) -> dict:
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "prompt_refused"
    return error["details"]


def test_deny_lists_refuse_prompts_with_nothing_charged_and_count_them(client, customer, served_model, sessions):
    rule = client.post("/v1/moderation/rules", headers=ADMIN,
                       json={"kind": "public_figure", "phrase": "Jane Celebrity", "note": "not licensed"})
    assert rule.status_code == 201, rule.text
    again = client.post("/v1/moderation/rules", headers=ADMIN, json={"kind": "term", "phrase": "jane  CELEBRITY"})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "moderation_rule_exists")
    assert client.post("/v1/moderation/rules", headers=ADMIN, json={"kind": "x", "phrase": "y"}).status_code == 422
    assert client.post("/v1/moderation/rules", headers=customer.headers,
                       json={"kind": "term", "phrase": "y"}).status_code == 403

    details = refusal_of(generate(client, customer, served_model, prompt="a portrait of JANE-celebrity"))
    assert details == {"rule": "public_figure", "rule_id": rule.json()["id"], "field": "prompt",
                       "matched": "Jane Celebrity"}
    details = refusal_of(generate(client, customer, served_model, prompt="red blocks",
                                  negative_prompt="jane celebrity"))
    assert details["field"] == "negative_prompt"
    with sessions() as session:
        assert session.scalars(select(Generation)).all() == []  # nothing written, nothing charged
    assert client.get("/v1/me", headers=customer.headers).json()["balance"]["amount"] == 0
    report = client.get("/v1/reports/moderation", headers=ADMIN).json()
    assert report["refusals"] == 2 and report["by_rule"] == {"public_figure": 2}
    assert report["by_tenant"] == {str(customer.tenant_id): 2} and report["by_match"] == {"Jane Celebrity": 2}

    retired = client.delete(f"/v1/moderation/rules/{rule.json()['id']}", headers=ADMIN)
    assert retired.status_code == 200 and retired.json()["retired_at"]
    assert client.get("/v1/moderation/rules", headers=ADMIN).json() == []
    assert generate(client, customer, served_model, prompt="a portrait of jane celebrity").status_code == 200
    assert client.get("/v1/reports/moderation", headers=ADMIN).json()["refusals"] == 2


def contributor_named(sessions, name: str) -> uuid.UUID:
    with sessions() as session:
        return session.scalars(select(Contributor.id).where(Contributor.display_name == name)).one()


def test_a_style_names_only_a_consenting_contributor_who_is_then_paid_for_it(client, customer, served_model,
                                                                              sessions, migrated, blob_store, tmp_path):
    artist = contributor_named(sessions, "Artist 1")
    details = refusal_of(generate(client, customer, served_model, prompt="red blocks in the style of Artist 1"))
    assert details["rule"] == "named_style_without_consent" and details["matched"] == "Artist 1"

    with sessions() as session, session.begin():
        _, artist_key = accounts_service.create_api_key(session=session, role="artist", name="a1",
                                                        contributor_id=artist)
    mine = client.put("/v1/me/style-consent", headers={"Authorization": f"Bearer {artist_key}"},
                      json={"named_styles": True})
    assert mine.status_code == 200 and mine.json() == {"contributor_id": str(artist), "display_name": "Artist 1",
                                                       "named_styles": True}
    assert client.put("/v1/me/style-consent", headers=customer.headers,
                      json={"named_styles": True}).status_code == 403
    assert client.put("/v1/me/style-consent", headers={"Authorization": f"Bearer {artist_key}"},
                      json={"named_styles": "yes"}).status_code == 422

    answer = generate(client, customer, served_model, prompt="red blocks in the style of artist 1, bright")
    assert answer.status_code == 200, answer.text
    attribution = answer.json()["attribution"]
    named = [line for line in attribution["contributors"] if line["method"] == "named_style"]
    assert [(line["contributor_id"], line["share"]) for line in named] == [(str(artist), "1/5")]
    assert sum(line["amount"] for line in attribution["contributors"]) == attribution["pool"]
    assert named[0]["amount"] == attribution["pool"] // 5  # 20 % of the pool (FOUNDRY_NAMED_STYLE_SHARE_BPS)
    with sessions() as session:
        generation = session.get(Generation, uuid.UUID(answer.json()["id"]))
        assert generation.named_styles == [str(artist)]
        assert generation.attribution["parameters"]["credits"] == [
            {"method": "named_style", "contributor_ids": [str(artist)], "share": "1/5"}]
    audit = audit_generation(sessions=sessions, blob_store=blob_store, generation_id=generation.id,
                             cache_dir=tmp_path / "models")
    assert audit.matches and any(part[0] == "named_style" for part in audit.posted)

    # the admin can withdraw consent for the artist; a style that names nobody is refused in strict mode
    assert client.put(f"/v1/contributors/{artist}/style-consent", headers=ADMIN,
                      json={"named_styles": False}).status_code == 200
    assert refusal_of(generate(client, customer, served_model, prompt="in the style of Artist 1"))["rule"] == (
        "named_style_without_consent")
    assert refusal_of(generate(client, customer, served_model, prompt="red blocks in the style of watercolor"))
    assert generate(client, customer, served_model, prompt="red blocks",
                    negative_prompt="in the style of anyone").status_code == 200  # avoiding a style names no one
    relaxed = migrated.model_copy(update={"style_names": "contributors"})
    with TestClient(create_app(relaxed)) as other:
        assert generate(other, customer, served_model, prompt="red blocks in the style of watercolor").status_code == 200
        assert refusal_of(generate(other, customer, served_model, prompt="in the style of Artist 1"))


def test_a_custom_models_captions_pass_the_same_rules(client, customer, served_model, sessions, base_snapshot):
    assert client.post("/v1/moderation/rules", headers=ADMIN,
                       json={"kind": "trademark", "phrase": "green tiles"}).status_code == 201
    refused = client.post("/v1/training-jobs", headers=ADMIN, json={
        "name": "acme", "recipe": "lora", "snapshot_id": str(base_snapshot.id), "base_model_id": str(served_model),
        "tenant_id": str(customer.tenant_id), "settings": {"max_train_steps": 1}})
    details = refusal_of(refused)
    assert (details["rule"], details["field"], details["matched"]) == ("trademark", "caption", "green tiles")
    with sessions() as session:
        [refusal] = session.scalars(select(PromptRefusal)).all()
        assert refusal.tenant_id == customer.tenant_id and refusal.field == "caption"
    shared = client.post("/v1/training-jobs", headers=ADMIN, json={  # the rules are for what customers ask
        "name": "shared", "recipe": "base", "snapshot_id": str(base_snapshot.id), "settings": {"max_train_steps": 1}})
    assert shared.status_code == 202, shared.text

