"""Every table of the foundry, imported in one place so metadata and migrations see them all."""

from foundry.catalog.models import Asset, CatalogImport, Contributor
from foundry.datasets.models import DatasetSnapshot, SnapshotEntry
from foundry.db import Base
from foundry.licensing.models import LicenseGrant

__all__ = ["Asset", "Base", "CatalogImport", "Contributor", "DatasetSnapshot", "LicenseGrant", "SnapshotEntry"]
