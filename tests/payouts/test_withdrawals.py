"""Opt-out and revocation by artists: immediate effects, model policies, audit, statements."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from foundry.catalog.models import Asset
from foundry.datasets import service as dataset_service
from foundry.datasets.service import LicenseGateViolation
from foundry.db import utcnow
from foundry.ledger.periods import period_of
from tests.generation.conftest import ADMIN
from tests.generation.test_generation_api import generate
from tests.payouts.test_statements import artists  # noqa: F401


def assets_of(sessions, contributor_id) -> list:
    with sessions() as session:
        return list(session.scalars(select(Asset.id).where(Asset.contributor_id == contributor_id)))


def test_revoking_one_asset_removes_it_from_new_snapshots_and_marks_models(client, customer, served_model, sessions,
                                                                            artists, base_snapshot):  # noqa: F811
    artist_id, headers = artists["Artist 0"]
    asset = assets_of(sessions, artist_id)[0]
    response = client.post("/v1/me/withdrawals", headers=headers, json={"asset_id": str(asset), "reason": "moved on"})
    assert response.status_code == 201, response.text
    withdrawal = response.json()
    assert withdrawal["revoked_grants"] == 1 and withdrawal["affected_models"] == [str(served_model)]
    again = client.post("/v1/me/withdrawals", headers=headers, json={"asset_id": str(asset), "reason": "again"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_withdrawn"
    # someone else's asset is "not found" to this artist
    other_asset = assets_of(sessions, artists["Artist 1"][0])[0]
    stolen = client.post("/v1/me/withdrawals", headers=headers, json={"asset_id": str(other_asset), "reason": "x"})
    assert stolen.status_code == 404

    with sessions() as session, session.begin():
        snapshot = dataset_service.create_snapshot(session=session, name="after", use="base_training",
                                                   created_by="t")
        members = {e.asset_id for e in dataset_service.snapshot_entries(session=session, snapshot_id=snapshot.id)}
    assert asset not in members and len(members) == 7
    with sessions() as session, pytest.raises(LicenseGateViolation) as gate:
        dataset_service.enforce_license_gate(session=session, snapshot_id=base_snapshot.id)
    assert gate.value.details["violations"] == [{"asset_id": str(asset), "reason": "revoked"}]

    # default policy: the model keeps serving, and keeps paying the artist
    served = generate(client, customer, served_model)
    assert served.status_code == 200
    assert any(line["display_name"] == "Artist 0" for line in served.json()["attribution"]["contributors"])
    statement = client.get(f"/v1/me/statements/{period_of(utcnow())}", headers=headers).json()
    assert statement["withdrawals"][0]["asset_id"] == str(asset)
    assert statement["withdrawals"][0]["models"] == [{"model_id": str(served_model), "name": "tiny-base",
                                                      "policy": "keep_serving", "grace_days": 30, "serving": True}]
    for statement_sql in ("UPDATE rights_withdrawal SET reason = 'x'", "DELETE FROM rights_withdrawal"):
        with pytest.raises(Exception, match="(?i)append-only|immutable"), sessions() as session, session.begin():
            session.execute(text(statement_sql))


def test_a_stop_policy_withdraws_the_model_after_its_grace_period(client, customer, served_model, sessions,
                                                                   artists):  # noqa: F811
    policy = client.put(f"/v1/models/{served_model}/revocation-policy", headers=ADMIN,
                        json={"policy": "stop_after_grace", "grace_days": 0})
    assert policy.status_code == 200
    assert client.put(f"/v1/models/{served_model}/revocation-policy", headers=customer.headers,
                      json={"policy": "keep_serving"}).status_code == 403
    assert generate(client, customer, served_model).status_code == 200  # untouched so far

    artist_id, headers = artists["Artist 2"]
    opted = client.post("/v1/me/withdrawals", headers=headers, json={"use": "base_training", "reason": "no AI"})
    assert opted.status_code == 201 and opted.json()["affected_models"] == [str(served_model)]
    refused = generate(client, customer, served_model, seed=99)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "model_withdrawn"

    with sessions() as session, session.begin():
        snapshot = dataset_service.create_snapshot(session=session, name="after", use="base_training",
                                                   created_by="t")
        contributors = {e.contributor_id for e in dataset_service.snapshot_entries(session=session,
                                                                                    snapshot_id=snapshot.id)}
    assert artist_id not in contributors
    statement = client.get(f"/v1/me/statements/{period_of(utcnow())}", headers=headers).json()
    assert statement["withdrawals"][0]["use"] == "base_training"
    assert statement["withdrawals"][0]["models"][0]["serving"] is False
    twice = client.post("/v1/me/withdrawals", headers=headers, json={"use": "base_training", "reason": "again"})
    assert twice.status_code == 409
    bad = client.post("/v1/me/withdrawals", headers=headers, json={"use": "everything", "reason": "x"})
    assert bad.status_code == 422
    both = client.post("/v1/me/withdrawals", headers=headers, json={"reason": "x"})
    assert both.status_code == 422 and both.json()["error"]["code"] == "invalid_withdrawal"
    assert client.post("/v1/me/withdrawals", headers=customer.headers,
                       json={"use": "generation", "reason": "x"}).status_code == 403
