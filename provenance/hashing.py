"""Content and perceptual hashes.

The sha256 of an image's bytes names it exactly; the perceptual hash names what it *looks
like*, so re-encodings and near-copies can be found (near-duplicate onboarding reports now,
output-vs-training-image checks and provenance look-ups later).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

PHASH_BITS = 64
_DCT_INPUT = 32
_DCT_KEEP = 8


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


WEIGHT_SUFFIXES = (".safetensors", ".bin")
"""The files of a model folder that hold weights (configs, tokenizers and readmes do not count)."""


def combined_weights_digest(files: Mapping[str, str]) -> str:
    """A model's weights digest: one sha256 over ``relative path -> file sha256`` of its weight files,
    in sorted path order. The registry stores it for every model; the training engine reports it."""
    digest = hashlib.sha256()
    for relative in sorted(files):
        if relative.endswith(WEIGHT_SUFFIXES):
            digest.update(f"{relative}\0{files[relative]}\n".encode())
    return digest.hexdigest()


def weights_digest(folder: str | Path) -> tuple[str, dict[str, str]]:
    """The weights digest of a model folder on disk, and the sha256 of each weight file in it."""
    folder = Path(folder)
    per_file: dict[str, str] = {}
    for path in sorted((p for p in folder.rglob("*") if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)),
                       key=lambda p: p.relative_to(folder).as_posix()):
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        per_file[path.relative_to(folder).as_posix()] = digest.hexdigest()
    return combined_weights_digest(per_file), per_file


@lru_cache(maxsize=1)
def _dct_matrix(n: int = _DCT_INPUT) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    matrix[0] /= np.sqrt(2.0)
    return matrix


def perceptual_hash(image: Image.Image, *, opaque: bool = False) -> int:
    """64-bit DCT hash of the image's luminance: the low 8×8 frequencies against their median.

    Transparent pixels are composited on white first, so an icon and its flattened copy agree;
    callers that know the image is already opaque pass ``opaque=True`` to skip that work.
    """
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha and not opaque:
        rgba = image.convert("RGBA")
        flattened = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        flattened.alpha_composite(rgba)
        image = flattened
    gray = image.convert("L").resize((_DCT_INPUT, _DCT_INPUT), Image.Resampling.BOX)
    pixels = np.asarray(gray, dtype=np.float64)
    dct = _dct_matrix()
    coefficients = (dct @ pixels @ dct.T)[:_DCT_KEEP, :_DCT_KEEP].flatten()
    median = np.median(coefficients[1:])
    bits = coefficients > median
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def phash_to_hex(value: int) -> str:
    return f"{value:016x}"


def phash_from_hex(text: str) -> int:
    return int(text, 16)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


class NearDuplicateIndex:
    """Finds stored hashes within a small Hamming distance without comparing against all of them.

    Splitting the 64 bits into ``distance + 1`` bands means two hashes within ``distance`` bits
    agree exactly on at least one band (pigeonhole), so only hashes sharing a band are compared.
    """

    def __init__(self, max_distance: int):
        if not 0 <= max_distance < 16:
            raise ValueError("max_distance must be between 0 and 15")
        self.max_distance = max_distance
        bands = max_distance + 1
        width = PHASH_BITS // bands
        self._bands = [(i * width, PHASH_BITS if i == bands - 1 else (i + 1) * width) for i in range(bands)]
        self._buckets: list[dict[int, list[tuple[int, object]]]] = [defaultdict(list) for _ in self._bands]

    def _band_values(self, value: int):
        for start, stop in self._bands:
            yield (value >> start) & ((1 << (stop - start)) - 1)

    def add(self, value: int, key: object) -> None:
        for bucket, band in zip(self._buckets, self._band_values(value), strict=True):
            bucket[band].append((value, key))

    def nearest(self, value: int) -> tuple[object, int] | None:
        """The closest stored key within ``max_distance``, or None. Keys must be hashable."""
        best: tuple[object, int] | None = None
        seen: set[object] = set()
        for bucket, band in zip(self._buckets, self._band_values(value), strict=True):
            for stored, key in bucket.get(band, ()):
                if key in seen:
                    continue
                seen.add(key)
                distance = hamming(stored, value)
                if distance <= self.max_distance and (best is None or distance < best[1]):
                    best = (key, distance)
        return best


def nearest_hash(hashes: np.ndarray, value: int) -> tuple[int, int] | None:
    """(position, distance) of the stored 64-bit hash closest to ``value``, by exhaustive scan.

    For lists small enough to hold in memory (a model's training set, the outputs to verify),
    where the banded index's radius limit would hide how far the nearest one is.
    """
    if len(hashes) == 0:
        return None
    differing = np.bitwise_xor(np.asarray(hashes, dtype=np.uint64), np.uint64(value))
    distances = np.unpackbits(differing.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
    best = int(np.argmin(distances))
    return best, int(distances[best])
