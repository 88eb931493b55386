"""Every table of the foundry, imported in one place so metadata and migrations see them all."""

from foundry.accounts.models import ApiKey, ArtistSession, Tenant
from foundry.attribution.models import AttributionIndex
from foundry.catalog.models import Asset, CatalogImport, Contributor
from foundry.datasets.models import DatasetSnapshot, SnapshotEntry
from foundry.db import Base
from foundry.generation.models import GeneratedImage, Generation
from foundry.ledger.models import LedgerEntry, PayoutPeriod
from foundry.licensing.models import LicenseGrant, LicenseTermsRecord, RightsWithdrawal
from foundry.models_registry.models import RegisteredModel
from foundry.moderation.models import ModerationRule, PromptRefusal
from foundry.payouts.models import PayoutLine
from foundry.pricing.models import PriceRule
from foundry.quality.models import ModelQuality, QualityEvaluator
from foundry.royalties.models import AttributionLine
from foundry.training_jobs.models import TrainingJob
from foundry.webhooks.models import WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiKey", "ArtistSession", "Asset", "AttributionIndex", "AttributionLine", "Base", "CatalogImport", "Contributor",
    "DatasetSnapshot", "GeneratedImage", "Generation", "LedgerEntry", "LicenseGrant", "LicenseTermsRecord",
    "ModelQuality", "ModerationRule", "PayoutLine", "PayoutPeriod", "PriceRule", "PromptRefusal", "QualityEvaluator",
    "RegisteredModel", "RightsWithdrawal", "SnapshotEntry", "Tenant", "TrainingJob", "WebhookDelivery",
    "WebhookEndpoint",
]
