"""What every blob store does, and the crash recovery written once against it.

A blob's key is the sha256 of its bytes, so writing is idempotent and blobs never change.
Imports write into a per-batch *staging* area first and promote the batch only after the
database transaction has committed: a crashed or failed import leaves no blob in the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from foundry.errors import FoundryError


class BlobIntegrityError(FoundryError):
    """The bytes stored under a key do not hash to that key: the object is corrupt."""

    code = "blob_integrity_error"


class BlobStore(Protocol):
    url: str

    def put(self, data: bytes) -> str: ...
    def get(self, sha256: str) -> bytes: ...
    def exists(self, sha256: str) -> bool: ...
    def delete(self, sha256: str) -> None: ...
    def iter_keys(self) -> Iterator[str]: ...
    def stage(self, stage_id: str, data: bytes) -> str: ...
    def staged_keys(self, stage_id: str) -> list[str]: ...
    def promote(self, stage_id: str) -> int: ...
    def discard(self, stage_id: str) -> None: ...
    def stage_ids(self) -> list[str]: ...


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
