"""License grants: what a contributor allows the foundry to do with one asset, and until when."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from foundry.db import Base, CreatedAtMixin, IdMixin
from foundry.licensing.policy import GrantTerms
from foundry.licensing.terms import LicenseTerms, Use


def uses_flagged(*, base_training: bool, customer_finetune: bool, generation: bool) -> frozenset[Use]:
    """The uses whose flag is set: terms and grants both store one boolean column per use."""
    flags = {Use.BASE_TRAINING: base_training, Use.CUSTOMER_FINETUNE: customer_finetune, Use.GENERATION: generation}
    return frozenset(use for use, flagged in flags.items() if flagged)


class LicenseTermsRecord(IdMixin, CreatedAtMixin, Base):
    """License terms onboarding accepts, and which uses a grant under them may carry.

    Data, not code: an admin registers terms (``foundry licenses add``, ``POST /v1/license-terms``);
    revision 0010 seeded the terms the foundry started with.
    """

    __tablename__ = "license_terms"

    code: Mapped[str] = mapped_column(String(64), unique=True)
    """The SPDX identifier (or a ``LicenseRef-`` / house code for terms SPDX does not list)."""
    name: Mapped[str] = mapped_column(String(300))
    url: Mapped[str] = mapped_column(String(1000))
    requires_attribution: Mapped[bool] = mapped_column(Boolean)
    share_alike: Mapped[bool] = mapped_column(Boolean)
    grants_base_training: Mapped[bool] = mapped_column(Boolean)
    grants_customer_finetune: Mapped[bool] = mapped_column(Boolean)
    grants_generation: Mapped[bool] = mapped_column(Boolean)
    created_by: Mapped[str] = mapped_column(String(200))

    @property
    def grantable_uses(self) -> frozenset[Use]:
        return uses_flagged(base_training=self.grants_base_training,
                            customer_finetune=self.grants_customer_finetune, generation=self.grants_generation)

    def as_terms(self) -> LicenseTerms:
        return LicenseTerms(code=self.code, name=self.name, url=self.url,
                            requires_attribution=self.requires_attribution, share_alike=self.share_alike,
                            grantable_uses=self.grantable_uses)


class LicenseGrant(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "license_grant"

    asset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("asset.id"), index=True)
    license_code: Mapped[str] = mapped_column(String(64))
    license_name: Mapped[str] = mapped_column(String(300))
    license_url: Mapped[str] = mapped_column(String(1000))
    credit_line: Mapped[str | None] = mapped_column(Text)
    permits_base_training: Mapped[bool] = mapped_column(Boolean)
    permits_customer_finetune: Mapped[bool] = mapped_column(Boolean)
    permits_generation: Mapped[bool] = mapped_column(Boolean)
    data_mining: Mapped[str | None] = mapped_column(String(64))
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revocation_reason: Mapped[str | None] = mapped_column(Text)
    revoked_by: Mapped[str | None] = mapped_column(String(200))
    import_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("catalog_import.id"))

    @property
    def uses(self) -> frozenset[Use]:
        return uses_flagged(base_training=self.permits_base_training,
                            customer_finetune=self.permits_customer_finetune, generation=self.permits_generation)

    @property
    def terms(self) -> GrantTerms:
        return GrantTerms(
            uses=self.uses,
            valid_from=self.valid_from,
            valid_until=self.valid_until,
            revoked_at=self.revoked_at,
            data_mining=self.data_mining,
        )


class RightsWithdrawal(IdMixin, CreatedAtMixin, Base):
    """An artist taking rights back: one asset's grants revoked, or an opt-out of one use for all
    their assets. Append-only (database triggers): a withdrawal is never silently undone."""

    __tablename__ = "rights_withdrawal"

    contributor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contributor.id"), index=True)
    asset_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("asset.id"), index=True)
    """Set for a single-asset revocation (every use); None for an opt-out."""
    use: Mapped[str | None] = mapped_column(String(32))
    """Set for an opt-out: base_training, customer_finetune or generation."""
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(200))
    revoked_grants: Mapped[int] = mapped_column(default=0)
    affected_models: Mapped[list] = mapped_column(default=list)
    """Ids of the models whose training snapshots hold the withdrawn assets, at withdrawal time."""
