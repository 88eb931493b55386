"""Content-addressed blob storage for original images, their training renditions and models.

``protocol`` says what a store does, ``keys`` what a key is, ``local`` and ``s3`` are the two
stores; :func:`open_blob_store` picks one by URL (the S3 one, and boto3, only when asked for).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from foundry.blobs.keys import sha256_hex
from foundry.blobs.local import LocalBlobStore
from foundry.blobs.protocol import BlobIntegrityError, BlobStore, recover_staging
from foundry.errors import InvalidInput

__all__ = ["BlobIntegrityError", "BlobStore", "LocalBlobStore", "open_blob_store", "recover_staging", "sha256_hex"]


def open_blob_store(url: str, *, s3_endpoint_url: str | None = None) -> BlobStore:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalBlobStore(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        from foundry.blobs.s3 import S3BlobStore  # boto3 only for deployments that use S3

        return S3BlobStore(bucket=parsed.netloc, prefix=parsed.path.strip("/"), endpoint_url=s3_endpoint_url)
    if parsed.scheme == "" and url:
        return LocalBlobStore(Path(url))
    raise InvalidInput(f"unsupported blob store URL {url!r} (use file:///path or s3://bucket/prefix)")
