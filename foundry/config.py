"""Settings for every process of the foundry, read from ``FOUNDRY_*`` environment variables.

The defaults are the embedded deployment: a SQLite file and a blob folder under ``./var``,
so a fresh checkout runs with no server at all.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FOUNDRY_", env_file=".env", extra="ignore")

    var_dir: Path = Field(default=Path("var"), description="Root of the embedded deployment's files.")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty means SQLite under var_dir.")
    blob_url: str = Field(
        default="",
        description="file:///abs/path or s3://bucket/prefix; empty means var_dir/blobs.",
    )
    s3_endpoint_url: str | None = Field(default=None, description="For S3-compatible servers (MinIO, moto).")
    broker_url: str = Field(default="", description="Celery broker; empty means SQLite under var_dir (no server).")
    broker_polling_interval: float = Field(default=0.5, description="Seconds between polls of the embedded broker.")
    attribution_index_after_training: bool = Field(
        default=True, description="Build the model's influence attribution index as the last stage of a training job.")
    influence_calibration_outputs: int = Field(
        default=32, ge=1, le=1024, description="Outputs a model draws for its own training captions when its index "
        "is built: the payment view's scores are centred on their mean (recorded in the index's config, so "
        "every generation is scored and audited with the number it was built with).")
    quality_after_training: bool = Field(
        default=False, description="Measure a base model's image quality (held-out prompts, the split's frozen "
        "evaluator) as the last stage of its training job; needs `foundry quality train-evaluator` once.")
    quality_per_group: int = Field(
        default=12, ge=1, le=10_000, description="Held-out prompts per catalog group in a training job's quality "
        "stage (the benchmark measures every held-out prompt).")
    job_stale_after_s: float = Field(default=120.0, description="A running job silent this long is re-claimable.")
    job_heartbeat_s: float = Field(default=10.0, description="How often a worker proves its job is alive.")
    admin_api_key: SecretStr | None = Field(default=None, description="Bearer key for admin endpoints.")
    session_secret: SecretStr | None = Field(
        default=None, description="Signs artist web sessions; empty means a random secret in var_dir/session-secret.")
    cookie_secure: bool = Field(default=False, description="Mark session cookies Secure (serve the pages over HTTPS).")

    # Onboarding limits: a bigger or larger image is rejected, never resized silently.
    max_image_bytes: int = 50 * 1024 * 1024
    max_image_pixels: int = 64_000_000
    max_upload_bytes: int = 2 * 1024 * 1024 * 1024
    max_json_bytes: int = Field(default=1024 * 1024, description="Largest JSON request body.")
    rendition_size: int = Field(default=256, description="Longest side of the normalised training rendition.")
    near_duplicate_distance: int = Field(default=4, description="Perceptual-hash Hamming distance for near-duplicates.")
    import_workers: int = Field(default=0, description="Decode processes for imports; 0 means one per core.")

    # Generation
    signing_dir: Path | None = Field(default=None, description="C2PA signing CA and leaf; empty means var_dir/signing.")
    pipeline_cache_size: int = Field(default=2, ge=1, description="Pipelines kept loaded per process.")
    sync_work_limit: float = Field(
        default=240.0, description="Requests up to this many native-size image-steps are answered synchronously.")
    generation_stale_after_s: float = Field(
        default=900.0, description="A generation running this long without finishing is re-queued.")
    output_near_duplicate_distance: int = Field(
        default=6, description="An output this close (pHash bits) to a training image is flagged.")
    payout_threshold: int = Field(default=1000, ge=0, description="Minimum payout in minor units; less carries over.")
    rate_limit_per_minute: int = Field(default=120, ge=1, description="Requests per minute per API key.")
    rate_limit_burst: int = Field(default=30, ge=1, description="Requests a key may send at once.")
    rate_limit_url: str = Field(default="", description="redis://... shares rate limits across API processes.")
    brand_asset_quota_count: int = Field(default=1000, ge=1, description="Brand assets a tenant may hold.")
    brand_asset_quota_bytes: int = Field(default=1024**3, ge=1, description="Bytes of brand assets a tenant may hold.")
    generation_tenant_concurrency: int = Field(default=4, ge=1, description=(
        "Queued generations of one tenant that workers run at once; the rest wait their turn in the rotation."))
    training_tenant_concurrency: int = Field(default=1, ge=1, description=(
        "Training jobs of one tenant (or of the platform) that the workers run at once; the rest wait their turn."))
    named_style_share_bps: int = Field(default=2000, ge=0, le=10_000, description=(
        "Share of a generation's pool paid to the contributors its prompt names as a style, in basis points."))
    style_names: Literal["strict", "contributors"] = Field(default="strict", description=(
        "strict: every 'in the style of ...' must name a contributor who agreed to be named; contributors: only "
        "references to contributors are checked."))
    edit_input_retention_days: int = Field(default=30, ge=0, description=(
        "Days an image uploaded for an edit is kept (its hash and size stay with the generation); 0 purges it "
        "as soon as the edit is done."))
    edit_catalog_inputs: Literal["pay", "refuse"] = Field(default="pay", description=(
        "An edit whose input is a near-duplicate of a licensed catalog image: pay that image's contributor "
        "the edit-source share of the pool, or refuse the edit (422 edit_input_in_catalog)."))
    edit_source_share_bps: int = Field(default=3000, ge=0, le=10_000, description=(
        "Share of an edit's pool paid to the contributor whose catalog image it edits, in basis points."))
    webhook_retry_base_s: float = Field(default=30.0, gt=0, description=(
        "Wait after a webhook delivery's first failed attempt; doubled after each (at most an hour, 8 attempts)."))
    webhook_poll_s: float = Field(default=2.0, gt=0, description="How often a worker sends the webhooks that are due.")
    webhook_allow_private_targets: bool = Field(default=False, description=(
        "Let webhooks reach loopback and private addresses (tests, single-host deployments)."))

    @property
    def max_edit_upload_bytes(self) -> int:
        """An edit uploads an image and at most one mask."""
        return 2 * self.max_image_bytes

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'foundry.db').resolve()}"

    @property
    def resolved_broker_url(self) -> str:
        if self.broker_url:
            return self.broker_url
        return f"sqla+sqlite:///{(self.var_dir / 'broker.db').resolve()}"

    @property
    def resolved_signing_dir(self) -> Path:
        return self.signing_dir if self.signing_dir is not None else self.var_dir / "signing"

    @property
    def resolved_blob_url(self) -> str:
        if self.blob_url:
            return self.blob_url
        return (self.var_dir / "blobs").resolve().as_uri()


@lru_cache
def get_settings() -> Settings:
    return Settings()
