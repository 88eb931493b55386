"""Charges and pools above 2,147,483,647 minor units, in two currencies, split to the unit."""

from __future__ import annotations

import uuid
from fractions import Fraction

import pytest
from sqlalchemy import func, select

from foundry.errors import Conflict
from foundry.generation.models import Generation
from foundry.ledger import service as ledger_service
from foundry.ledger.accounts import PLATFORM_REVENUE, contributor_account, customer_account
from foundry.ledger.models import LedgerEntry
from foundry.models_registry.models import RegisteredModel
from foundry.pricing import service as pricing_service
from foundry.royalties import service as royalties_service
from foundry.royalties.models import AttributionLine
from tests.generation.conftest import make_customer
from tests.generation.test_generation_api import generate

INT32_MAX = 2**31 - 1


def test_charges_above_32_bits_split_exactly_in_usd_and_idr(client, served_model, sessions):
    usd, idr = make_customer(sessions, "Dollar Brand"), make_customer(sessions, "Rupiah Brand")
    with sessions() as session, session.begin():
        pricing_service.set_price(session=session, unit_price=10**9, currency="USD", pool_share_bps=9_999,
                                  created_by="t", model_id=served_model, tenant_id=usd.tenant_id)
        pricing_service.set_price(session=session, unit_price=999_999_997, currency="IDR", pool_share_bps=7_001,
                                  created_by="t", model_id=served_model, tenant_id=idr.tenant_id)
    bodies = {}
    for customer, images, currency in ((usd, 3, "USD"), (idr, 8, "IDR")):
        response = generate(client, customer, served_model, num_images=images)
        assert response.status_code == 200, response.text
        bodies[currency] = response.json()
    expected = {"USD": (3 * 10**9, 3 * 10**9 * 9_999 // 10_000), "IDR": (8 * 999_999_997, 8 * 999_999_997 * 7_001 // 10_000)}
    for currency, (charge, pool) in expected.items():
        attribution = bodies[currency]["attribution"]
        assert (attribution["charge"], attribution["pool"]) == (charge, pool) and pool > INT32_MAX
        assert sum(c["amount"] for c in attribution["contributors"]) == pool

    with sessions() as session:
        balances = ledger_service.trial_balance(session=session)
        for currency, customer in (("USD", usd), ("IDR", idr)):
            generation_id = uuid.UUID(bodies[currency]["id"])
            generation = session.get(Generation, generation_id)
            charge, pool = expected[currency]
            assert (generation.charge_amount, generation.pool_amount, generation.currency) == (charge, pool, currency)
            entries = ledger_service.entries_for(session=session, generation_id=generation_id, limit=1000)
            assert [e.amount for e in entries if e.kind == "charge"] == [charge]
            royalties = [e for e in entries if e.kind == "royalty"]
            assert sum(e.amount for e in royalties) == pool and {e.currency for e in entries} == {currency}
            assert sum(balances[currency].values()) == 0
            assert balances[currency][customer_account(customer.tenant_id)] == -charge
            assert balances[currency][PLATFORM_REVENUE] == charge - pool
            paid = {e.contributor_id: 0 for e in royalties}
            for entry in royalties:
                paid[entry.contributor_id] += entry.amount
            for contributor_id, amount in paid.items():
                assert balances[currency][contributor_account(contributor_id)] == amount
            lines = session.scalars(select(AttributionLine).where(AttributionLine.generation_id == generation_id))
            assert sum(line.amount for line in lines) == pool


def test_a_generation_is_charged_once_whatever_calls_the_ledger(client, customer, served_model, sessions):
    body = generate(client, customer, served_model).json()
    generation_id = uuid.UUID(body["id"])
    with sessions() as session:
        before = session.scalar(select(func.count()).select_from(LedgerEntry))
        lines = session.scalar(select(func.count()).select_from(AttributionLine))
        generation = session.get(Generation, generation_id)
        model = session.get(RegisteredModel, served_model)
        attribution = royalties_service.pro_rata_attribution(
            session=session, model=model, charge=generation.charge_amount, currency="USD",
            pool_share=Fraction(2, 5), finetune_share=Fraction(1, 2))
    with sessions() as session, session.begin():
        with pytest.raises(Conflict) as refused:
            royalties_service.post_generation(session=session, generation_id=generation_id,
                                              tenant_id=customer.tenant_id, model_id=served_model,
                                              attribution=attribution)
        assert refused.value.code == "already_charged"
        # the caller's transaction goes on after the refused posting
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == before
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == before
        assert session.scalar(select(func.count()).select_from(AttributionLine)) == lines
