"""Every stable error code the foundry answers with, in one list.

An error carries one of these as its ``code`` (``{"error": {"code": ..., "message": ...}}`` over HTTP,
a one-line message in the CLI). Members are strings, so ``code="already_charged"`` and
``code=ErrorCode.ALREADY_CHARGED`` are the same. ``tests/test_error_codes.py`` fails when the source
raises a code that is not here, and when the README's table (code, HTTP status, meaning) misses one.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    # generic
    FOUNDRY_ERROR = "foundry_error"
    NOT_FOUND = "not_found"
    INVALID_INPUT = "invalid_input"
    CONFLICT = "conflict"
    PERMISSION_DENIED = "permission_denied"
    UNAVAILABLE = "unavailable"

    # HTTP edge
    VALIDATION_ERROR = "validation_error"
    MALFORMED_REQUEST = "malformed_request"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    REQUEST_TOO_LARGE = "request_too_large"
    HTTP_ERROR = "http_error"
    MISSING_API_KEY = "missing_api_key"
    INVALID_API_KEY = "invalid_api_key"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    EMPTY_FILE = "empty_file"
    FILE_TOO_LARGE = "file_too_large"
    PROVENANCE_NOT_CONFIGURED = "provenance_not_configured"

    # accounts
    API_KEY_NOT_FOUND = "api_key_not_found"
    INVALID_KEY_SCOPE = "invalid_key_scope"
    TENANT_EXISTS = "tenant_exists"
    TENANT_NAME_MISSING = "tenant_name_missing"
    TENANT_NOT_FOUND = "tenant_not_found"

    # catalog
    ARCHIVE_CORRUPT = "archive_corrupt"
    ASSET_NOT_FOUND = "asset_not_found"
    CONTRIBUTOR_NOT_FOUND = "contributor_not_found"
    FORMAT_UNKNOWN = "format_unknown"
    IMAGES_ROOT_INVALID = "images_root_invalid"
    IMAGES_ROOT_MISSING = "images_root_missing"
    IMPORT_NOT_FOUND = "import_not_found"
    MANIFEST_MALFORMED = "manifest_malformed"
    MANIFEST_MISSING = "manifest_missing"
    SOURCE_EMPTY = "source_empty"
    SOURCE_MISSING = "source_missing"

    # licensing
    ALREADY_WITHDRAWN = "already_withdrawn"
    GRANT_ALREADY_REVOKED = "grant_already_revoked"
    GRANT_NOT_FOUND = "grant_not_found"
    INVALID_USE = "invalid_use"
    INVALID_WITHDRAWAL = "invalid_withdrawal"
    LICENSE_TERMS_EXIST = "license_terms_exist"
    REVOCATION_REASON_MISSING = "revocation_reason_missing"
    WITHDRAWAL_REASON_MISSING = "withdrawal_reason_missing"

    # datasets
    INVALID_FILTERS = "invalid_filters"
    LICENSE_GATE_VIOLATION = "license_gate_violation"
    MANIFEST_TAMPERED = "manifest_tampered"
    SNAPSHOT_EMPTY = "snapshot_empty"
    SNAPSHOT_NOT_FOUND = "snapshot_not_found"

    # training jobs and models
    BASE_MODEL_MISSING = "base_model_missing"
    BASE_MODEL_TENANT_MISMATCH = "base_model_tenant_mismatch"
    INVALID_BASE_MODEL = "invalid_base_model"
    INVALID_RECIPE = "invalid_recipe"
    UNKNOWN_PRESET = "unknown_preset"
    SNAPSHOT_TENANT_MISMATCH = "snapshot_tenant_mismatch"
    SNAPSHOT_USE_MISMATCH = "snapshot_use_mismatch"
    TRAINING_ERROR = "training_error"
    TRAINING_JOB_FINISHED = "training_job_finished"
    TRAINING_JOB_NOT_FOUND = "training_job_not_found"
    INVALID_POLICY = "invalid_policy"
    LINEAGE_INVALID = "lineage_invalid"
    MODEL_CORRUPT = "model_corrupt"
    MODEL_FILE_TOO_LARGE = "model_file_too_large"
    MODEL_FOLDER_INVALID = "model_folder_invalid"
    MODEL_NOT_FOUND = "model_not_found"
    MODEL_NOT_INDEXABLE = "model_not_indexable"
    MODEL_NOT_SERVABLE = "model_not_servable"
    MODEL_WITHDRAWN = "model_withdrawn"

    # quality
    EVALUATOR_CORRUPT = "evaluator_corrupt"
    EVALUATOR_INVALID = "evaluator_invalid"
    EVALUATOR_NOT_FOUND = "evaluator_not_found"
    EVALUATOR_SNAPSHOTS_INVALID = "evaluator_snapshots_invalid"
    HELDOUT_CONTAMINATED = "heldout_contaminated"
    MODEL_QUALITY_NOT_FOUND = "model_quality_not_found"
    QUALITY_METRICS_INCOMPLETE = "quality_metrics_incomplete"

    # attribution
    ATTRIBUTION_INDEX_CORRUPT = "attribution_index_corrupt"
    ATTRIBUTION_INDEX_STALE = "attribution_index_stale"
    GENERATION_NOT_ATTRIBUTED = "generation_not_attributed"
    DISPUTE_NOT_FOUND = "dispute_not_found"
    DISPUTE_ALREADY_CHECKED = "dispute_already_checked"
    CONTRIBUTOR_NOT_IN_MODEL = "contributor_not_in_model"

    # generation
    GENERATION_FAILED = "generation_failed"
    GENERATION_NOT_FOUND = "generation_not_found"
    GENERATION_NOT_REFUNDABLE = "generation_not_refundable"
    GENERATION_NOT_RUNNING = "generation_not_running"
    EDIT_INPUT_REJECTED = "edit_input_rejected"
    EDIT_INPUT_IN_CATALOG = "edit_input_in_catalog"
    EDIT_INPUT_PURGED = "edit_input_purged"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    IMAGE_NOT_FOUND = "image_not_found"
    INVALID_CURSOR = "invalid_cursor"
    INVALID_IDEMPOTENCY_KEY = "invalid_idempotency_key"
    UNSUPPORTED_FORMAT = "unsupported_format"

    # pricing, ledger, payouts
    PRICE_NOT_CONFIGURED = "price_not_configured"
    INVALID_PRICE = "invalid_price"
    ALREADY_CHARGED = "already_charged"
    LEDGER_ENTRIES_NOT_FOUND = "ledger_entries_not_found"
    ALREADY_PAID_OUT = "already_paid_out"
    EARLIER_PERIOD_OPEN = "earlier_period_open"
    INVALID_PERIOD = "invalid_period"
    INVALID_THRESHOLD = "invalid_threshold"
    PERIOD_NOT_ENDED = "period_not_ended"
    PERIOD_NOT_FOUND = "period_not_found"
    PERIOD_OPEN = "period_open"

    # brand assets
    BRAND_ASSET_QUOTA_EXCEEDED = "brand_asset_quota_exceeded"
    CUSTOM_MODEL_NOT_FOUND = "custom_model_not_found"

    # moderation
    PROMPT_REFUSED = "prompt_refused"
    MODERATION_RULE_EXISTS = "moderation_rule_exists"
    MODERATION_RULE_NOT_FOUND = "moderation_rule_not_found"

    # webhooks
    WEBHOOK_NOT_FOUND = "webhook_not_found"
    WEBHOOK_URL_INVALID = "webhook_url_invalid"
    WEBHOOK_LIMIT_REACHED = "webhook_limit_reached"

    # blobs
    BLOB_INTEGRITY_ERROR = "blob_integrity_error"
    BLOB_NOT_FOUND = "blob_not_found"
    BLOB_STORE_ERROR = "blob_store_error"
    INVALID_BLOB_KEY = "invalid_blob_key"
    INVALID_BLOB_URL = "invalid_blob_url"
    INVALID_STAGE_ID = "invalid_stage_id"

    # demo (CLI only)
    DEMO_API_FAILED = "demo_api_failed"
    DEMO_CATALOG_CORRUPT = "demo_catalog_corrupt"
    DEMO_CATALOG_MISSING = "demo_catalog_missing"
    DEMO_GENERATION_FAILED = "demo_generation_failed"
    DEMO_TRAINING_FAILED = "demo_training_failed"
