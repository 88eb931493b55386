"""Blobs as files on a local disk: ``blobs/ab/cd/<sha256>``, staging in ``staging/<stage id>/``."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from foundry.blobs.keys import check_key, check_stage, is_blob_key, is_stage_id, sha256_hex
from foundry.errors import NotFound


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
        check_key(sha256)
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
            if is_blob_key(path.name):
                yield path.name

    def stage(self, stage_id: str, data: bytes) -> str:
        key = sha256_hex(data)
        target = self._staging / check_stage(stage_id) / key
        if not target.exists() and not self._path(key).exists():
            self._write_atomic(target, data)
        return key

    def staged_keys(self, stage_id: str) -> list[str]:
        folder = self._staging / check_stage(stage_id)
        return sorted(p.name for p in folder.glob("*") if is_blob_key(p.name)) if folder.exists() else []

    def promote(self, stage_id: str) -> int:
        folder = self._staging / check_stage(stage_id)
        moved = 0
        for key in self.staged_keys(stage_id):
            target = self._path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(folder / key, target)
            moved += 1
        shutil.rmtree(folder, ignore_errors=True)
        return moved

    def discard(self, stage_id: str) -> None:
        shutil.rmtree(self._staging / check_stage(stage_id), ignore_errors=True)
        self._made_dirs = {d for d in self._made_dirs if self._staging not in d.parents}

    def stage_ids(self) -> list[str]:
        return sorted(p.name for p in self._staging.iterdir() if p.is_dir() and is_stage_id(p.name))
