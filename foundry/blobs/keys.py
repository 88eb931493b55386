"""Blob keys and staging ids: a blob's key is the sha256 (hex) of its bytes."""

from __future__ import annotations

import hashlib
import re

from foundry.errors import InvalidInput

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_STAGE_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_blob_key(name: str) -> bool:
    return bool(_SHA256.match(name))


def is_stage_id(name: str) -> bool:
    return bool(_STAGE_ID.match(name))


def check_key(sha256: str) -> str:
    """``sha256`` itself, or InvalidInput when it is not a blob key."""
    if not is_blob_key(sha256):
        raise InvalidInput(f"not a sha256 blob key: {sha256!r}", code="invalid_blob_key")
    return sha256


def check_stage(stage_id: str) -> str:
    """``stage_id`` itself, or InvalidInput when it is not a staging id."""
    if not is_stage_id(stage_id):
        raise InvalidInput(f"not a staging id: {stage_id!r}", code="invalid_stage_id")
    return stage_id
