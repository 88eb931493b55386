"""Public shapes of catalog data, shared by the API and the CLI's JSON output."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class ImportRow(BaseModel):
    row: int
    ref: str
    path: str | None = None
    code: str
    message: str
    reason: str | None = None
    """Where the licensing rule decided: its code (e.g. data_mining_prohibited, embedded_rights_unreadable)."""


class NearDuplicate(BaseModel):
    row: int
    ref: str
    near: str
    distance: int


class ImportReport(BaseModel):
    rejections: list[ImportRow] = []
    warnings: list[ImportRow] = []
    near_duplicates: list[NearDuplicate] = []


class ImportRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    source: str
    source_format: str
    source_sha256: str | None
    requested_by: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    rows_total: int
    rows_imported: int
    rows_unchanged: int
    rows_rejected: int
    contributors_created: int
    near_duplicates: int
    error: str | None
    report: ImportReport


class ImportSummaryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    source_format: str
    status: str
    started_at: datetime
    rows_total: int
    rows_imported: int
    rows_unchanged: int
    rows_rejected: int


class ImportPage(BaseModel):
    items: list[ImportSummaryRead]
    limit: int
    offset: int


class GrantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    license_code: str
    license_url: str
    credit_line: str | None
    permits_base_training: bool
    permits_customer_finetune: bool
    permits_generation: bool
    data_mining: str | None
    valid_from: datetime
    valid_until: datetime | None
    revoked_at: datetime | None


class AssetRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    sha256: str
    phash: str
    format: str
    width: int
    height: int
    byte_size: int
    rendition_sha256: str
    caption: str
    tags: list[str]
    source_ref: str
    contributor_id: uuid.UUID
    import_id: uuid.UUID
    near_duplicate_of_id: uuid.UUID | None
    embedded_rights: dict
    grants: list[GrantRead] = []


class ContributorAssets(BaseModel):
    display_name: str
    assets: int


class CatalogSummaryRead(BaseModel):
    contributors: int
    assets: int
    grants: int
    grants_by_use: dict[str, int]
    assets_by_format: dict[str, int]
    imports: int
    top_contributors: list[ContributorAssets]
    """The contributors with the most assets, most first."""
