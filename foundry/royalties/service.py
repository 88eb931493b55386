"""Attribution of a generation's pool and the ledger postings that pay it.

The edge owns the transaction: these functions only ``flush``. A generation's charge, its
royalties and its attribution lines are written by one call inside the caller's transaction.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from foundry.attribution.policy import blended_weights, mean_shares
from foundry.catalog.models import Contributor
from foundry.datasets.models import SnapshotEntry
from foundry.db import utcnow
from foundry.errors import Conflict, NotFound
from foundry.ledger import service as ledger_service
from foundry.ledger.accounts import PLATFORM_REVENUE, contributor_account, customer_account
from foundry.ledger.models import LedgerEntry
from foundry.ledger.periods import posting_period
from foundry.models_registry import service as registry_service
from foundry.models_registry.models import RegisteredModel
from foundry.money import split_exact
from foundry.royalties.models import AttributionLine
from foundry.royalties.policy import Credit, Layer, credited_remainder, pool_of, pro_rata_weights, with_credits
from provenance.influence_shares import InfluenceShares

BRAND_REF_PREFIX = "tenant:"


@dataclass(frozen=True)
class ContributorShare:
    """One contributor's part of the pool under one method (a contributor may have a pro-rata and an
    influence share of the same generation)."""

    contributor_id: uuid.UUID
    weight: Fraction
    amount: int
    asset_count: int
    method: str = "pro_rata"
    top_assets: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class RoyaltyPosting:
    """One royalty ledger entry to write: influence royalties are per (contributor, asset)."""

    contributor_id: uuid.UUID
    method: str
    amount: int
    asset_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Attribution:
    method: str
    """pro_rata, or blend (part by per-output influence, the rest pro rata)."""
    charge: int
    pool: int
    currency: str
    shares: list[ContributorShare]
    postings: list[RoyaltyPosting] = field(default_factory=list)
    parameters: dict = field(default_factory=dict)
    """How the split was made (alpha, index, influence parameters): enough to recompute it."""

    @property
    def paid_out(self) -> int:
        return sum(share.amount for share in self.shares)

    @property
    def platform(self) -> int:
        return self.charge - self.paid_out


def snapshot_counts(*, session: Session, snapshot_ids: list[uuid.UUID]) -> Counter:
    """Assets per contributor over these snapshots; a tenant's own brand assets never count."""
    if not snapshot_ids:
        return Counter()
    rows = session.execute(
        select(SnapshotEntry.contributor_id, func.count())
        .join(Contributor, Contributor.id == SnapshotEntry.contributor_id)
        .where(SnapshotEntry.snapshot_id.in_(snapshot_ids),
               (Contributor.external_ref.is_(None)) | (~Contributor.external_ref.startswith(BRAND_REF_PREFIX)))
        .group_by(SnapshotEntry.contributor_id))
    return Counter({contributor: count for contributor, count in rows})


def layers_of(*, session: Session, model: RegisteredModel) -> tuple[Layer, Layer | None]:
    """(base layer, fine-tune layer): a layered model's own snapshot is the fine-tune layer and its
    ancestors' snapshots the base; a model without a parent is all base."""
    chain = registry_service.lineage(session=session, model_id=model.id)
    own = [model.snapshot_id] if model.snapshot_id else []
    ancestors = [m.snapshot_id for m in chain[1:] if m.snapshot_id]
    if model.parent_id is None:
        return Layer(snapshot_counts(session=session, snapshot_ids=own)), None
    return (Layer(snapshot_counts(session=session, snapshot_ids=ancestors)),
            Layer(snapshot_counts(session=session, snapshot_ids=own)))


def attribute_pool(*, session: Session, model: RegisteredModel, charge: int, currency: str, pool_share: Fraction,
                   finetune_share: Fraction, influence: InfluenceShares | None = None,
                   alpha: Fraction = Fraction(0), credits: Sequence[Credit] = (),
                   parameters: dict | None = None) -> Attribution:
    """Split a charge's contributor pool: first each credit's share to the contributors the request names
    (a named style, the catalog image an edit starts from), then of the rest ``alpha`` by per-output
    influence over the influential assets and the remainder pro rata over the model's training data. One
    exact split over every (method, contributor, asset) part, so the parts sum to the pool to the unit."""
    pool = pool_of(charge, pool_share)
    base, finetune = layers_of(session=session, model=model)
    pro_rata = pro_rata_weights(base, finetune, finetune_share)
    if influence is not None:
        influence = mean_shares([influence], eligible=set(pro_rata))
    weights = with_credits(blended_weights(pro_rata, influence, alpha), credits)
    influence_part = alpha * credited_remainder(credits)  # asset shares are parts of it
    if any(credit.effective for credit in credits):
        parameters = {**(parameters or {}), "credits": [c.as_dict() for c in credits if c.effective]}
    amounts = split_exact(pool, weights) if weights and pool else {}
    counts = Counter(base.asset_counts) + (Counter(finetune.asset_counts) if finetune else Counter())
    per_line: dict[tuple[str, uuid.UUID], list] = {}
    for (method, contributor, asset), weight in weights.items():
        line = per_line.setdefault((method, contributor), [Fraction(0), 0, []])
        line[0] += weight
        line[1] += amounts.get((method, contributor, asset), 0)
        if asset is not None:
            line[2].append({"asset_id": str(asset), "share_ppm": int(weight / influence_part * 1_000_000),
                            "amount": amounts.get((method, contributor, asset), 0)})
    shares = [ContributorShare(contributor_id=contributor, weight=weight, amount=amount, asset_count=counts[contributor],
                               method=method, top_assets=sorted(assets, key=lambda a: (-a["share_ppm"], a["asset_id"])))
              for (method, contributor), (weight, amount, assets) in per_line.items()]
    shares.sort(key=lambda share: (-share.weight, share.method, str(share.contributor_id)))
    postings = [RoyaltyPosting(contributor_id=contributor, method=method, amount=amounts[(method, contributor, asset)],
                               asset_id=asset)
                for (method, contributor, asset) in sorted(amounts, key=lambda k: (k[0], str(k[1]), str(k[2])))
                if amounts[(method, contributor, asset)] > 0]
    blended = any(share.method == "influence" for share in shares)
    return Attribution(method="blend" if blended else "pro_rata", charge=charge, pool=sum(amounts.values()),
                       currency=currency, shares=shares, postings=postings,
                       parameters={**(parameters or {}),
                                   "alpha": f"{alpha.numerator}/{alpha.denominator}" if blended else "0/1"})


def pro_rata_attribution(*, session: Session, model: RegisteredModel, charge: int, currency: str,
                         pool_share: Fraction, finetune_share: Fraction) -> Attribution:
    return attribute_pool(session=session, model=model, charge=charge, currency=currency, pool_share=pool_share,
                          finetune_share=finetune_share)


def post_generation(*, session: Session, generation_id: uuid.UUID, tenant_id: uuid.UUID, model_id: uuid.UUID,
                    attribution: Attribution) -> list[LedgerEntry]:
    """The customer charge and each contributor's royalty, as one ledger transaction, plus the
    attribution lines that explain them. A generation is charged once: the ledger's unique posting
    keys refuse a second posting, and nothing of it is written."""
    transaction_id = uuid.uuid4()
    posted_at = utcnow()
    period = posting_period(session=session, at=posted_at)
    entries = []
    if attribution.charge > 0:
        entries.append(LedgerEntry(
            transaction_id=transaction_id, posting_key=ledger_service.charge_key(generation_id),
            posted_at=posted_at, period=period, kind="charge",
            debit_account=customer_account(tenant_id), credit_account=PLATFORM_REVENUE,
            amount=attribution.charge, currency=attribution.currency, generation_id=generation_id,
            tenant_id=tenant_id, model_id=model_id, memo="generation charge"))
    lines = [AttributionLine(
        generation_id=generation_id, contributor_id=share.contributor_id, method=share.method,
        weight=f"{share.weight.numerator}/{share.weight.denominator}",
        share_ppm=int(share.weight * 1_000_000), amount=share.amount, asset_count=share.asset_count,
        top_assets=share.top_assets) for share in attribution.shares]
    for posting in attribution.postings:
        entries.append(LedgerEntry(
            transaction_id=transaction_id,
            posting_key=ledger_service.royalty_key(generation_id, posting.method, posting.contributor_id,
                                                   posting.asset_id),
            posted_at=posted_at, period=period, kind="royalty", method=posting.method,
            debit_account=PLATFORM_REVENUE, credit_account=contributor_account(posting.contributor_id),
            amount=posting.amount, currency=attribution.currency, generation_id=generation_id,
            tenant_id=tenant_id, model_id=model_id, contributor_id=posting.contributor_id,
            asset_id=posting.asset_id, memo=f"royalty ({posting.method})"))
    if not ledger_service.post(session=session, entries=entries, with_rows=lines):
        raise Conflict(f"generation {generation_id} is already charged", code="already_charged")
    return entries


def reverse_generation(*, session: Session, generation_id: uuid.UUID, reason: str) -> list[LedgerEntry]:
    """Reverse every not-yet-reversed entry of a generation (a refund). Running it twice adds nothing."""
    originals = list(session.scalars(
        select(LedgerEntry).where(LedgerEntry.generation_id == generation_id, LedgerEntry.kind != "reversal")
        .order_by(LedgerEntry.posted_at, LedgerEntry.id)))
    if not originals:
        raise NotFound(f"generation {generation_id} has no ledger entries", code="ledger_entries_not_found")
    return ledger_service.reverse(session=session, originals=originals, reason=reason)


def attribution_lines(*, session: Session, generation_id: uuid.UUID) -> list[tuple[AttributionLine, str]]:
    return list(session.execute(
        select(AttributionLine, Contributor.display_name)
        .join(Contributor, Contributor.id == AttributionLine.contributor_id)
        .where(AttributionLine.generation_id == generation_id)
        .order_by(AttributionLine.amount.desc(), AttributionLine.share_ppm.desc(), AttributionLine.contributor_id)))

