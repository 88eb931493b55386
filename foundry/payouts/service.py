"""Statements and period close, derived from the ledger only.

Every figure on a statement is a sum over ledger entries of one contributor in one period, so
the API, the CSV and the payout batch always agree: there is no second copy of the numbers.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from foundry.catalog.models import Contributor
from foundry.csv_export import write_csv
from foundry.datasets.models import SnapshotEntry
from foundry.db import get_or_raise, utcnow
from foundry.errors import Conflict
from foundry.generation.models import Generation
from foundry.ledger import service as ledger_service
from foundry.ledger.accounts import CONTRIBUTOR_PREFIX, PLATFORM_PAYOUTS, contributor_account, is_contributor_account
from foundry.ledger.models import LedgerEntry, PayoutPeriod
from foundry.ledger.periods import ensure_period, parse_period, period_of, posting_period
from foundry.models_registry import service as registry_service
from foundry.models_registry.models import RegisteredModel
from foundry.money import split_exact
from foundry.payouts.models import PayoutLine
from foundry.royalties.models import AttributionLine

EARNING_KINDS = ("royalty", "reversal")
"""What a statement counts: royalties and their reversals (payouts move money, they earn nothing)."""


def _signed_amount():
    """+amount when the entry credits the contributor, -amount when it debits them (a reversal)."""
    return case((LedgerEntry.credit_account.startswith(CONTRIBUTOR_PREFIX), LedgerEntry.amount),
                else_=-LedgerEntry.amount)


def _earnings(contributor_id: uuid.UUID, period: str):
    return (LedgerEntry.contributor_id == contributor_id, LedgerEntry.period == period,
            LedgerEntry.kind.in_(EARNING_KINDS))


@dataclass
class PeriodClose:
    period: PayoutPeriod
    closed_now: bool
    lines: int


def close_period(*, session: Session, period: str, closed_by: str, threshold: int,
                 now: datetime | None = None) -> PeriodClose:
    """Freeze ``period`` into a payout batch. Closing a closed period is a no-op."""
    parse_period(period)
    now = now or utcnow()
    if period >= period_of(now):
        raise Conflict(f"{period} has not ended yet", code="period_not_ended")
    if threshold < 0:
        raise Conflict("the payout threshold cannot be negative", code="invalid_threshold")
    ensure_period(session, period)
    row = session.scalars(select(PayoutPeriod).where(PayoutPeriod.period == period).with_for_update()
                          .execution_options(populate_existing=True)).one()
    if row.status == "closed":
        return PeriodClose(row, False, 0)
    earlier_open = session.scalar(select(LedgerEntry.period).join(
        PayoutPeriod, PayoutPeriod.period == LedgerEntry.period).where(
        LedgerEntry.period < period, PayoutPeriod.status == "open").limit(1))
    if earlier_open:
        raise Conflict(f"close {earlier_open} first: periods close in order", code="earlier_period_open")

    balances: dict[tuple[uuid.UUID, str], list[int]] = defaultdict(lambda: [0, 0])  # carried in, earned
    previous = session.scalar(select(func.max(PayoutPeriod.period)).where(
        PayoutPeriod.period < period, PayoutPeriod.status == "closed"))
    if previous:
        for contributor_id, currency, carried in session.execute(
                select(PayoutLine.contributor_id, PayoutLine.currency, PayoutLine.carried_out)
                .where(PayoutLine.period == previous, PayoutLine.carried_out != 0)):
            balances[(contributor_id, currency)][0] = carried
    for contributor_id, currency, earned in session.execute(
            select(LedgerEntry.contributor_id, LedgerEntry.currency, func.sum(_signed_amount()))
            .where(LedgerEntry.period == period, LedgerEntry.kind.in_(EARNING_KINDS),
                   LedgerEntry.contributor_id.is_not(None))
            .group_by(LedgerEntry.contributor_id, LedgerEntry.currency)):
        balances[(contributor_id, currency)][1] = int(earned)

    lines, payouts, totals = [], [], defaultdict(int)
    posted_at = utcnow()
    payout_period = None
    transaction_id = uuid.uuid4()
    for (contributor_id, currency), (carried_in, earned) in sorted(balances.items(), key=lambda kv: str(kv[0])):
        available = carried_in + earned
        payable = available if available >= max(threshold, 1) else 0
        lines.append(PayoutLine(period=period, contributor_id=contributor_id, currency=currency,
                                carried_in=carried_in, earned=earned, payable=payable,
                                carried_out=available - payable))
        if payable:
            totals[currency] += payable
            payout_period = payout_period or posting_period(session=session, at=posted_at)
            payouts.append(LedgerEntry(
                transaction_id=transaction_id, posting_key=ledger_service.payout_key(period, contributor_id, currency),
                posted_at=posted_at, period=payout_period, kind="payout",
                debit_account=contributor_account(contributor_id), credit_account=PLATFORM_PAYOUTS, amount=payable,
                currency=currency, contributor_id=contributor_id, memo=f"payout for {period}"))
    session.add_all(lines)
    if not ledger_service.post(session=session, entries=payouts):
        raise Conflict(f"{period} was paid out already", code="already_paid_out")
    row.status, row.closed_at, row.closed_by, row.threshold = "closed", now, closed_by, threshold
    row.contributors = len({contributor for contributor, _ in balances})
    row.total_payable = dict(totals)
    session.flush()
    return PeriodClose(row, True, len(lines))


def batch_csv(*, session: Session, period: str) -> str:
    """The closed period's payouts, one row per contributor and currency, for a payment provider."""
    row = get_or_raise(session, PayoutPeriod, period, code="period_not_found", what="payout period")
    if row.status != "closed":
        raise Conflict(f"{period} is not closed yet", code="period_open")
    lines = session.execute(
        select(PayoutLine, Contributor.display_name, Contributor.payout_identity)
        .join(Contributor, Contributor.id == PayoutLine.contributor_id)
        .where(PayoutLine.period == period).order_by(Contributor.display_name, PayoutLine.contributor_id))
    return write_csv(["period", "contributor_id", "display_name", "payout_identity", "currency", "carried_in",
                      "earned", "payable", "carried_out"],
                     ([period, line.contributor_id, name, identity, line.currency, line.carried_in, line.earned,
                       line.payable, line.carried_out] for line, name, identity in lines))


@dataclass
class Statement:
    contributor_id: uuid.UUID
    display_name: str
    period: str
    status: str
    currency: str
    carried_in: int
    earned: int
    pro_rata: int
    influence: int
    refunds: int
    payable: int
    carried_out: int
    threshold: int
    outputs: int
    by_model: list[dict] = field(default_factory=list)
    by_asset: list[dict] = field(default_factory=list)
    assets_total: int = 0
    withdrawals: list[dict] = field(default_factory=list)
    """Rights this contributor took back, and what became of the models trained on them."""


def statement(*, session: Session, contributor_id: uuid.UUID, period: str, currency: str, threshold: int,
              top_assets: int = 50) -> Statement:
    parse_period(period)
    contributor = get_or_raise(session, Contributor, contributor_id, code="contributor_not_found",
                               what="contributor")
    where = (*_earnings(contributor_id, period), LedgerEntry.currency == currency)
    signed = _signed_amount()
    totals = session.execute(select(
        func.coalesce(func.sum(signed), 0),
        func.coalesce(func.sum(case((LedgerEntry.method == "pro_rata", signed), else_=0)), 0),
        func.coalesce(func.sum(case((LedgerEntry.method == "influence", signed), else_=0)), 0),
        func.coalesce(func.sum(case((LedgerEntry.kind == "reversal", signed), else_=0)), 0),
        func.count(func.distinct(LedgerEntry.generation_id))).where(*where)).one()
    earned, pro_rata, influence, refunds, outputs = (int(value) for value in totals)

    row = session.get(PayoutPeriod, period)
    line = session.scalar(select(PayoutLine).where(PayoutLine.period == period,
                                                   PayoutLine.contributor_id == contributor_id,
                                                   PayoutLine.currency == currency))
    if row is not None and row.status == "closed":
        status, threshold = "closed", row.threshold
        carried_in = line.carried_in if line else 0
        payable, carried_out = (line.payable, line.carried_out) if line else (0, 0)
    else:
        status = "open"
        carried_in = _carried_into(session, contributor_id, period, currency)
        available = carried_in + earned
        payable = available if available >= max(threshold, 1) else 0
        carried_out = available - payable

    by_model = [{"model_id": model_id, "name": name, "amount": int(amount), "outputs": int(count)}
                for model_id, name, amount, count in session.execute(
                    select(LedgerEntry.model_id, RegisteredModel.name, func.sum(signed),
                           func.count(func.distinct(LedgerEntry.generation_id)))
                    .join(RegisteredModel, RegisteredModel.id == LedgerEntry.model_id)
                    .where(*where).group_by(LedgerEntry.model_id, RegisteredModel.name)
                    .order_by(func.sum(signed).desc()))]
    assets = _by_asset(session, contributor_id, by_model, where)
    withdrawals = _withdrawals(session, contributor_id)
    return Statement(withdrawals=withdrawals, contributor_id=contributor_id, display_name=contributor.display_name, period=period,
                     status=status, currency=currency, carried_in=carried_in, earned=earned, pro_rata=pro_rata,
                     influence=influence, refunds=refunds, payable=payable, carried_out=carried_out,
                     threshold=threshold, outputs=outputs, by_model=by_model, by_asset=assets[:top_assets],
                     assets_total=len(assets))


def _withdrawals(session: Session, contributor_id: uuid.UUID) -> list[dict]:
    from foundry.licensing import service as licensing_service
    from foundry.models_registry.policy import serving_problem

    now = utcnow()
    listed = []
    for withdrawal in licensing_service.withdrawals_of(session=session, contributor_id=contributor_id):
        models = []
        for model_id in withdrawal.affected_models:
            model = session.get(RegisteredModel, uuid.UUID(model_id))
            problem = serving_problem(revocation_policy=model.revocation_policy, grace_days=model.grace_days,
                                      rights_affected_at=model.rights_affected_at, now=now)
            models.append({"model_id": model_id, "name": model.name, "policy": model.revocation_policy,
                           "grace_days": model.grace_days, "serving": problem is None})
        listed.append({"id": withdrawal.id, "at": withdrawal.created_at, "asset_id": withdrawal.asset_id,
                       "use": withdrawal.use, "reason": withdrawal.reason, "revoked_grants": withdrawal.revoked_grants,
                       "models": models})
    return listed


def _carried_into(session: Session, contributor_id: uuid.UUID, period: str, currency: str) -> int:
    """What an open period starts with: the last close's carry-over plus earnings of open periods since."""
    last_closed = session.scalar(select(func.max(PayoutPeriod.period)).where(
        PayoutPeriod.period < period, PayoutPeriod.status == "closed"))
    carried = 0
    if last_closed:
        carried = session.scalar(select(PayoutLine.carried_out).where(
            PayoutLine.period == last_closed, PayoutLine.contributor_id == contributor_id,
            PayoutLine.currency == currency)) or 0
    since = session.scalar(select(func.coalesce(func.sum(_signed_amount()), 0)).where(
        LedgerEntry.contributor_id == contributor_id, LedgerEntry.currency == currency,
        LedgerEntry.kind.in_(EARNING_KINDS), LedgerEntry.period < period,
        *([LedgerEntry.period > last_closed] if last_closed else [])))
    return int(carried) + int(since)


def _by_asset(session: Session, contributor_id: uuid.UUID, by_model: list[dict], where) -> list[dict]:
    """Which of my images earned what. Influence royalties name their asset; a pro-rata royalty is
    earned by all of the contributor's assets in the model's training data alike, so each model's
    pro-rata total is split exactly over them (the asset amounts sum to the statement's)."""
    amounts: dict[uuid.UUID, int] = defaultdict(int)
    outputs: dict[uuid.UUID, int] = defaultdict(int)
    signed = _signed_amount()
    for asset_id, amount, count in session.execute(
            select(LedgerEntry.asset_id, func.sum(signed), func.count(func.distinct(LedgerEntry.generation_id)))
            .where(*where, LedgerEntry.asset_id.is_not(None)).group_by(LedgerEntry.asset_id)):
        amounts[asset_id] += int(amount)
        outputs[asset_id] += int(count)
    for model in by_model:
        pro_rata_total, count = session.execute(
            select(func.coalesce(func.sum(signed), 0), func.count(func.distinct(LedgerEntry.generation_id)))
            .where(*where, LedgerEntry.model_id == model["model_id"], LedgerEntry.asset_id.is_(None))).one()
        snapshot_ids = [m.snapshot_id for m in registry_service.lineage(session=session, model_id=model["model_id"])
                        if m.snapshot_id]
        asset_ids = sorted(set(session.scalars(select(SnapshotEntry.asset_id).where(
            SnapshotEntry.snapshot_id.in_(snapshot_ids), SnapshotEntry.contributor_id == contributor_id))), key=str)
        if not asset_ids or int(count) == 0:
            continue
        sign = -1 if pro_rata_total < 0 else 1
        for asset_id, part in split_exact(abs(int(pro_rata_total)), dict.fromkeys(asset_ids, 1)).items():
            amounts[asset_id] += sign * part
            outputs[asset_id] += int(count)
    return sorted(({"asset_id": asset_id, "amount": amount, "outputs": outputs[asset_id]}
                   for asset_id, amount in amounts.items()), key=lambda item: (-item["amount"], str(item["asset_id"])))


def statement_outputs(*, session: Session, contributor_id: uuid.UUID, period: str, currency: str, limit: int,
                      offset: int) -> list[dict]:
    """The statement's lines, one per ledger entry: which output, when, which share, how much."""
    parse_period(period)
    rows = session.execute(
        select(LedgerEntry, Generation.created_at, AttributionLine.share_ppm)
        .join(Generation, Generation.id == LedgerEntry.generation_id, isouter=True)
        .join(AttributionLine, (AttributionLine.generation_id == LedgerEntry.generation_id)
              & (AttributionLine.contributor_id == LedgerEntry.contributor_id)
              & (AttributionLine.method == LedgerEntry.method), isouter=True)
        .where(*_earnings(contributor_id, period), LedgerEntry.currency == currency)
        .order_by(LedgerEntry.posted_at, LedgerEntry.id).limit(limit).offset(offset))
    return [{"entry_id": entry.id, "generation_id": entry.generation_id, "posted_at": entry.posted_at,
             "generated_at": generated_at, "kind": entry.kind, "method": entry.method, "model_id": entry.model_id,
             "asset_id": entry.asset_id, "share_ppm": share_ppm,
             "amount": entry.amount if is_contributor_account(entry.credit_account) else -entry.amount}
            for entry, generated_at, share_ppm in rows]


def statement_csv(*, session: Session, contributor_id: uuid.UUID, period: str, currency: str) -> str:
    columns = ["entry_id", "posted_at", "generation_id", "generated_at", "kind", "method", "model_id", "asset_id",
               "share_ppm", "amount", "currency"]

    def rows():
        offset = 0
        while page := statement_outputs(session=session, contributor_id=contributor_id, period=period,
                                        currency=currency, limit=5000, offset=offset):
            for item in page:
                yield [{**item, "currency": currency}[column] for column in columns]
            offset += len(page)

    return write_csv(columns, rows())


def periods_with_earnings(*, session: Session, contributor_id: uuid.UUID, currency: str) -> list[dict]:
    """Earned per period, newest first: the artist's history (and the chart on their page)."""
    return [{"period": period, "earned": int(amount)} for period, amount in session.execute(
        select(LedgerEntry.period, func.sum(_signed_amount()))
        .where(LedgerEntry.contributor_id == contributor_id, LedgerEntry.currency == currency,
               LedgerEntry.kind.in_(EARNING_KINDS))
        .group_by(LedgerEntry.period).order_by(LedgerEntry.period.desc()))]


def period_report(*, session: Session, currency: str) -> list[dict]:
    """Per period: revenue charged, royalties to the pool (net of reversals), payouts made, status."""
    signed = case((LedgerEntry.kind == "reversal", -LedgerEntry.amount), else_=LedgerEntry.amount)
    kind = case((LedgerEntry.kind == "reversal",
                 case((LedgerEntry.contributor_id.is_(None), "charge"), else_="royalty")), else_=LedgerEntry.kind)
    figures: dict[str, dict] = defaultdict(lambda: {"revenue": 0, "pool": 0, "payouts": 0})
    for period, entry_kind, amount in session.execute(
            select(LedgerEntry.period, kind, func.sum(signed)).where(LedgerEntry.currency == currency)
            .group_by(LedgerEntry.period, kind)):
        name = {"charge": "revenue", "royalty": "pool", "payout": "payouts"}.get(entry_kind)
        if name:
            figures[period][name] += int(amount)
    statuses = dict(session.execute(select(PayoutPeriod.period, PayoutPeriod.status)).all())
    return [{"period": period, "status": statuses.get(period, "open"), **values,
             "platform": values["revenue"] - values["pool"]}
            for period, values in sorted(figures.items(), reverse=True)]


def top_contributors(*, session: Session, period: str, currency: str, limit: int = 20) -> list[dict]:
    parse_period(period)
    signed = _signed_amount()
    return [{"contributor_id": contributor_id, "display_name": name, "earned": int(amount), "outputs": int(outputs)}
            for contributor_id, name, amount, outputs in session.execute(
                select(LedgerEntry.contributor_id, Contributor.display_name, func.sum(signed),
                       func.count(func.distinct(LedgerEntry.generation_id)))
                .join(Contributor, Contributor.id == LedgerEntry.contributor_id)
                .where(LedgerEntry.period == period, LedgerEntry.currency == currency,
                       LedgerEntry.kind.in_(EARNING_KINDS))
                .group_by(LedgerEntry.contributor_id, Contributor.display_name)
                .order_by(func.sum(signed).desc(), Contributor.display_name).limit(limit))]


def model_report(*, session: Session, period: str, currency: str) -> list[dict]:
    """Per model in a period: outputs charged, revenue and pool (net of refunds)."""
    parse_period(period)
    signed = case((LedgerEntry.kind == "reversal", -LedgerEntry.amount), else_=LedgerEntry.amount)
    rows = session.execute(
        select(LedgerEntry.model_id, RegisteredModel.name,
               func.sum(case((LedgerEntry.contributor_id.is_(None), signed), else_=0)),
               func.sum(case((LedgerEntry.contributor_id.is_not(None), signed), else_=0)),
               func.count(func.distinct(LedgerEntry.generation_id)))
        .join(RegisteredModel, RegisteredModel.id == LedgerEntry.model_id)
        .where(LedgerEntry.period == period, LedgerEntry.currency == currency,
               LedgerEntry.kind.in_(("charge", "royalty", "reversal")))
        .group_by(LedgerEntry.model_id, RegisteredModel.name))
    return sorted(({"model_id": model_id, "name": name, "revenue": int(revenue), "pool": int(pool),
                    "outputs": int(outputs)} for model_id, name, revenue, pool, outputs in rows),
                  key=lambda item: -item["revenue"])
