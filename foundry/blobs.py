"""Content-addressed blob storage for original images and their training renditions.

A blob's key is the sha256 of its bytes, so writing is idempotent and blobs never change.
Imports write into a per-batch *staging* area first and promote the batch only after the
database transaction has committed: a crashed or failed import leaves no blob in the store.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from foundry.errors import InvalidInput, NotFound

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_STAGE_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_key(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise InvalidInput(f"not a sha256 blob key: {sha256!r}", code="invalid_blob_key")
    return sha256


def _check_stage(stage_id: str) -> str:
    if not _STAGE_ID.match(stage_id):
        raise InvalidInput(f"not a staging id: {stage_id!r}", code="invalid_stage_id")
    return stage_id


class BlobStore(Protocol):
    url: str

    def put(self, data: bytes) -> str: ...
    def get(self, sha256: str) -> bytes: ...
    def exists(self, sha256: str) -> bool: ...
    def delete(self, sha256: str) -> None: ...
    def iter_keys(self) -> Iterator[str]: ...
    def stage(self, stage_id: str, data: bytes) -> str:
        # No temp-file dance: a staged file only counts once its batch has committed, and a
        # batch commits after every write has returned, so a torn write is never promoted.
        key = sha256_hex(data)
        folder = self._staging / _check_stage(stage_id) / key[:2]
        target = folder / key
        if not self._path(key).exists() and not target.exists():
            if folder not in self._made_dirs:
                folder.mkdir(parents=True, exist_ok=True)
                self._made_dirs.add(folder)
            target.write_bytes(data)
        return key

    def staged_keys(self, stage_id: str) -> list[str]:
        folder = self._staging / _check_stage(stage_id)
        return sorted(p.name for p in folder.glob("*/*") if _SHA256.match(p.name)) if folder.exists() else []

    def promote(self, stage_id: str) -> int:
        folder = self._staging / _check_stage(stage_id)
        moved = 0
        for key in self.staged_keys(stage_id):
            target = self._path(key)
            if target.parent not in self._made_dirs:
                target.parent.mkdir(parents=True, exist_ok=True)
                self._made_dirs.add(target.parent)
            os.replace(folder / key[:2] / key, target)
            moved += 1
        self.discard(stage_id)
        return moved

    def discard(self, stage_id: str) -> None: ...
    def stage_ids(self) -> list[str]: ...


class LocalBlobStore:
    """Blobs as files ``blobs/ab/cd/<sha256>``; staging in ``staging/<stage id>/``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.url = self.root.resolve().as_uri()
        self._blobs = self.root / "blobs"
        self._staging = self.root / "staging"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._staging.mkdir(parents=True, exist_ok=True)
        self._made_dirs: set[Path] = set()

    def _path(self, sha256: str) -> Path:
        _check_key(sha256)
        return self._blobs / sha256[:2] / sha256[2:4] / sha256

    @staticmethod
    def _write_atomic(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put(self, data: bytes) -> str:
        key = sha256_hex(data)
        path = self._path(key)
        if not path.exists():
            self._write_atomic(path, data)
        return key

    def get(self, sha256: str) -> bytes:
        try:
            return self._path(sha256).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {sha256} is not in the store", code="blob_not_found") from None

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).exists()

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)

    def iter_keys(self) -> Iterator[str]:
        for path in self._blobs.glob("*/*/*"):
            if _SHA256.match(path.name):
                yield path.name

    def stage(self, stage_id: str, data: bytes) -> str:
        key = sha256_hex(data)
        target = self._staging / _check_stage(stage_id) / key
        if not target.exists() and not self._path(key).exists():
            self._write_atomic(target, data)
        return key

    def staged_keys(self, stage_id: str) -> list[str]:
        folder = self._staging / _check_stage(stage_id)
        return sorted(p.name for p in folder.glob("*") if _SHA256.match(p.name)) if folder.exists() else []

    def promote(self, stage_id: str) -> int:
        folder = self._staging / _check_stage(stage_id)
        moved = 0
        for key in self.staged_keys(stage_id):
            target = self._path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(folder / key, target)
            moved += 1
        shutil.rmtree(folder, ignore_errors=True)
        return moved

    def discard(self, stage_id: str) -> None:
        shutil.rmtree(self._staging / _check_stage(stage_id), ignore_errors=True)
        self._made_dirs = {d for d in self._made_dirs if self._staging not in d.parents}

    def stage_ids(self) -> list[str]:
        return sorted(p.name for p in self._staging.iterdir() if p.is_dir() and _STAGE_ID.match(p.name))


def open_blob_store(url: str, *, s3_endpoint_url: str | None = None) -> BlobStore:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalBlobStore(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        from foundry.blobs_s3 import S3BlobStore

        return S3BlobStore(bucket=parsed.netloc, prefix=parsed.path.strip("/"), endpoint_url=s3_endpoint_url)
    if parsed.scheme == "" and url:
        return LocalBlobStore(Path(url))
    raise InvalidInput(f"unsupported blob store URL {url!r} (use file:///path or s3://bucket/prefix)")


def recover_staging(store: BlobStore, committed_stage_ids: Iterable[str]) -> dict[str, int]:
    """Finish what a crash interrupted: promote committed batches, discard the rest."""
    committed = set(committed_stage_ids)
    promoted = discarded = 0
    for stage_id in store.stage_ids():
        if stage_id in committed:
            store.promote(stage_id)
            promoted += 1
        else:
            store.discard(stage_id)
            discarded += 1
    return {"promoted": promoted, "discarded": discarded}
