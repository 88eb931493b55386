"""The frozen batches a period's close produces.

Closing a period (``foundry.ledger.models.PayoutPeriod``) writes one ``PayoutLine`` per contributor
and currency -- carried in, earned, payable now, carried out -- and from then on the lines are
immutable (database triggers).
"""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from foundry.db import Base, IdMixin


class PayoutLine(IdMixin, Base):
    __tablename__ = "payout_line"
    __table_args__ = (UniqueConstraint("period", "contributor_id", "currency"),)

    period: Mapped[str] = mapped_column(ForeignKey("payout_period.period"), index=True)
    contributor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contributor.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    carried_in: Mapped[int] = mapped_column(BigInteger)
    earned: Mapped[int] = mapped_column(BigInteger)
    payable: Mapped[int] = mapped_column(BigInteger)
    carried_out: Mapped[int] = mapped_column(BigInteger)
