"""Statements and period close: every figure from the ledger, exact, and the same in every view."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text

from foundry.accounts import service as accounts_service
from foundry.catalog.models import Contributor
from foundry.db import utcnow
from foundry.ledger import service as ledger_service
from foundry.ledger.periods import next_period, period_of, previous_period
from foundry.payouts import service as payouts_service
from tests.generation.conftest import ADMIN
from tests.generation.test_generation_api import generate

NOW = utcnow()
THIS_MONTH = period_of(NOW)
NEXT_MONTH = next_period(THIS_MONTH)
AFTER_MONTH_END = datetime(int(NEXT_MONTH[:4]), int(NEXT_MONTH[5:]), 3, tzinfo=UTC)


@pytest.fixture
def artists(sessions) -> dict[str, tuple[uuid.UUID, dict]]:
    """name -> (contributor id, artist key headers)"""
    found = {}
    with sessions() as session, session.begin():
        for contributor in session.scalars(select(Contributor).where(Contributor.display_name.like("Artist %"))):
            _, key = accounts_service.create_api_key(session=session, role="artist", name=contributor.display_name,
                                                     contributor_id=contributor.id)
            found[contributor.display_name] = (contributor.id, {"Authorization": f"Bearer {key}"})
    return found


def test_period_arithmetic():
    assert next_period("2026-12") == "2027-01" and previous_period("2027-01") == "2026-12"
    assert next_period("2026-03") == "2026-04" and previous_period("2026-04") == "2026-03"


def test_statement_adds_up_in_every_view(client, customer, served_model, artists):
    generations = [generate(client, customer, served_model, seed=seed).json() for seed in (1, 2)]
    artist_id, headers = artists["Artist 0"]
    expected = sum(line["amount"] for g in generations for line in g["attribution"]["contributors"]
                   if line["contributor_id"] == str(artist_id))
    assert expected > 0

    body = client.get(f"/v1/me/statements/{THIS_MONTH}", headers=headers).json()
    assert (body["earned"], body["pro_rata"], body["influence"], body["refunds"]) == (expected, expected, 0, 0)
    assert body["outputs"] == 2 and body["status"] == "open" and body["carried_in"] == 0
    assert body["by_model"] == [{"model_id": str(served_model), "name": "tiny-base", "amount": expected,
                                 "outputs": 2}]
    assert body["assets_total"] == 3 and sum(a["amount"] for a in body["by_asset"]) == expected
    assert all(a["outputs"] == 2 for a in body["by_asset"])
    assert {i["generation_id"] for i in body["outputs_page"]["items"]} == {g["id"] for g in generations}
    assert sum(i["amount"] for i in body["outputs_page"]["items"]) == expected

    exported = client.get(f"/v1/me/statements/{THIS_MONTH}.csv", headers=headers)
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 2 and sum(int(r["amount"]) for r in rows) == expected
    history = client.get("/v1/me/statements", headers=headers).json()["periods"]
    assert history == [{"period": THIS_MONTH, "earned": expected}]
    # an admin reads the same numbers; nobody else reads them at all
    assert client.get(f"/v1/contributors/{artist_id}/statements/{THIS_MONTH}", headers=ADMIN).json()["earned"] == expected
    _, other_headers = artists["Artist 1"]
    assert client.get(f"/v1/contributors/{artist_id}/statements/{THIS_MONTH}", headers=other_headers).status_code == 403
    assert client.get(f"/v1/me/statements/{THIS_MONTH}", headers=customer.headers).status_code == 403
    assert client.get("/v1/me/statements/2026-13", headers=headers).json()["error"]["code"] == "invalid_period"


def test_close_freezes_pays_over_the_threshold_and_late_entries_move_on(client, customer, served_model, sessions,
                                                                        artists):
    first = generate(client, customer, served_model, seed=1).json()
    generate(client, customer, served_model, seed=2)
    earned = {name: client.get(f"/v1/me/statements/{THIS_MONTH}", headers=headers).json()["earned"]
              for name, (_, headers) in artists.items()}
    threshold = sorted(earned.values())[1]  # at least one artist below it, at least two at or over it
    assert client.post(f"/v1/payout-periods/{THIS_MONTH}/close", headers=ADMIN).json()["error"]["code"] == \
        "period_not_ended"

    with sessions() as session, session.begin():
        closed = payouts_service.close_period(session=session, period=THIS_MONTH, closed_by="t", threshold=threshold,
                                              now=AFTER_MONTH_END)
    assert closed.closed_now and closed.lines == 3
    with sessions() as session, session.begin():
        again = payouts_service.close_period(session=session, period=THIS_MONTH, closed_by="t", threshold=0,
                                             now=AFTER_MONTH_END)
    assert not again.closed_now and again.period.threshold == threshold

    with sessions() as session:
        batch = list(csv.DictReader(io.StringIO(payouts_service.batch_csv(session=session, period=THIS_MONTH))))
    assert {row["display_name"] for row in batch} == set(earned)
    for row in batch:
        assert int(row["earned"]) == earned[row["display_name"]]
        paid = earned[row["display_name"]] >= threshold
        assert (int(row["payable"]), int(row["carried_out"])) == ((earned[row["display_name"]], 0) if paid
                                                                   else (0, earned[row["display_name"]]))

    # a refund after the close lands in the next period; the closed statement does not move
    closed_view = {name: client.get(f"/v1/me/statements/{THIS_MONTH}", headers=h).json()
                   for name, (_, h) in artists.items()}
    assert client.post(f"/v1/generations/{first['id']}/refund?reason=late", headers=ADMIN).status_code == 200
    for name, (contributor_id, headers) in artists.items():
        now = client.get(f"/v1/me/statements/{THIS_MONTH}", headers=headers).json()
        assert now == closed_view[name] and now["status"] == "closed"
        later = client.get(f"/v1/me/statements/{NEXT_MONTH}", headers=headers).json()
        refunded = next(line["amount"] for line in first["attribution"]["contributors"]
                        if line["contributor_id"] == str(contributor_id))
        assert later["refunds"] == later["earned"] == -refunded
        assert later["carried_in"] == closed_view[name]["carried_out"]
    with sessions() as session:
        balances = ledger_service.trial_balance(session=session)["USD"]
        assert sum(balances.values()) == 0
        paid_total = sum(int(row["payable"]) for row in batch)
        assert balances["platform:payouts"] == paid_total
    for statement in ("UPDATE payout_line SET payable = 0", "DELETE FROM payout_line",
                      f"UPDATE payout_period SET status = 'open' WHERE period = '{THIS_MONTH}'"):
        with pytest.raises(Exception, match="(?i)immutable"), sessions() as session, session.begin():
            session.execute(text(statement))


def test_periods_close_in_order_and_only_after_they_end(sessions, client, customer, served_model):
    generate(client, customer, served_model)
    later = next_period(NEXT_MONTH)
    with sessions() as session, session.begin(), pytest.raises(Exception) as error:
        payouts_service.close_period(session=session, period=NEXT_MONTH, closed_by="t", threshold=0,
                                     now=datetime(int(later[:4]), int(later[5:]), 2, tzinfo=UTC))
    assert error.value.code == "earlier_period_open"
    response = client.post("/v1/payout-periods/1999-01/close", headers=ADMIN)
    assert response.status_code == 200 and response.json()["contributors"] == 0  # an empty month closes empty
    assert client.post("/v1/payout-periods/1999-01/close", headers=customer.headers).status_code == 403
    assert client.get(f"/v1/payout-periods/{THIS_MONTH}/batch.csv", headers=ADMIN).json()["error"]["code"] == \
        "period_open"


def test_admin_reports_add_up(client, customer, served_model, artists):
    bodies = [generate(client, customer, served_model, seed=seed).json() for seed in (1, 2, 3)]
    assert client.post(f"/v1/generations/{bodies[0]['id']}/refund?reason=r", headers=ADMIN).status_code == 200
    periods = client.get("/v1/reports/periods", headers=ADMIN).json()
    assert periods == [{"period": THIS_MONTH, "status": "open", "revenue": 50, "pool": 20, "payouts": 0,
                        "platform": 30}]
    top = client.get(f"/v1/reports/periods/{THIS_MONTH}/contributors", headers=ADMIN).json()
    assert sum(item["earned"] for item in top) == 20 and top[0]["earned"] >= top[-1]["earned"]
    models = client.get(f"/v1/reports/periods/{THIS_MONTH}/models", headers=ADMIN).json()
    assert models == [{"model_id": str(served_model), "name": "tiny-base", "revenue": 50, "pool": 20, "outputs": 3}]
    assert client.get("/v1/reports/periods", headers=customer.headers).status_code == 403


def test_influence_royalties_show_per_asset_in_the_statement_and_csv(client, customer, served_model, artists,
                                                                     sessions, blob_store, tmp_path,
                                                                     toy_outputs_count):
    from provenance.influence import InfluenceConfig
    from worker.attribution import build_index

    build_index(sessions=sessions, blob_store=blob_store, model_id=served_model, cache_dir=tmp_path / "models",
                config=InfluenceConfig(timesteps=(200, 600), projection_dim=256, normalisation="self", payment_timesteps=None), built_by="test")
    generations = [generate(client, customer, served_model, seed=seed).json() for seed in (1, 2, 3)]
    assert all(g["attribution"]["method"] == "blend" for g in generations)
    influence_paid = {}
    for g in generations:
        for line in g["attribution"]["contributors"]:
            if line["method"] == "influence":
                influence_paid[line["contributor_id"]] = influence_paid.get(line["contributor_id"], 0) + line["amount"]
    name, (artist_id, headers) = next((n, a) for n, a in artists.items() if influence_paid.get(str(a[0])))
    body = client.get(f"/v1/me/statements/{THIS_MONTH}", headers=headers).json()
    assert body["influence"] == influence_paid[str(artist_id)]
    assert body["earned"] == body["pro_rata"] + body["influence"]
    assert sum(a["amount"] for a in body["by_asset"]) == body["earned"]
    rows = list(csv.DictReader(io.StringIO(client.get(f"/v1/me/statements/{THIS_MONTH}.csv", headers=headers).text)))
    influence_rows = [r for r in rows if r["method"] == "influence"]
    assert influence_rows and all(r["asset_id"] for r in influence_rows)
    assert sum(int(r["amount"]) for r in influence_rows) == body["influence"], name
    assert sum(int(r["amount"]) for r in rows) == body["earned"]
