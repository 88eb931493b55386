"""Invisible watermark: the generation id and image index, with Reed-Solomon error correction,
hidden in the delivered pixels by invisible-watermark's DWT-DCT-SVD method.

The payload is the generation's UUID (16 bytes) and the image index (1 byte), protected by
``PARITY_BYTES`` of Reed-Solomon parity, so a decode survives a number of flipped bits and a
wrong decode is rejected instead of naming a random generation.

DWT-DCT-SVD needs at least 256 px per side, and it loses bits where the picture is pure white
(the chroma change clips at 255). Generated emoji sit on white, so before embedding the
rendition is clipped at ``WHITE_CEILING`` (a 2% grey no viewer notices), which leaves room for
the watermark everywhere. The bits go into both the luma and the blue-difference channel
(``SCALES``): chroma alone does not survive JPEG's 4:2:0 subsampling, luma alone does not
survive resizing. Measured on 161 upscaled OpenMoji renders (NEAREST, 256 px): 100% decoded
clean, after JPEG q90 and q80, and after a 90% resize and back; no false accepts on 2,576
unmarked renditions (the odd 25-byte codeword spreads each bit over many columns, and the
whitening mask keeps blank pictures from reading as a valid codeword).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
from PIL import Image

PAYLOAD_BYTES = 17
PARITY_BYTES = 8
WHITE_CEILING = 250
MIN_SIDE = 256
METHOD = "dwtDctSvd"
SCALES = [36, 36, 0]
"""Embedding strength per YUV channel; the library only ever uses the first two."""
DESCRIPTION = {"method": f"invisible-watermark/{METHOD}", "payload": "generation uuid + image index",
               "error_correction": f"reed-solomon({PAYLOAD_BYTES + PARITY_BYTES},{PAYLOAD_BYTES})"}


def payload_for(generation_id: uuid.UUID, index: int) -> bytes:
    if not 0 <= index < 256:
        raise ValueError("image index must fit one byte")
    return generation_id.bytes + bytes([index])


@dataclass(frozen=True)
class WatermarkReading:
    generation_id: uuid.UUID
    index: int
    corrected_bytes: int


# Coded bytes are XORed with this fixed mask: a blank or unmarked picture reads as all-0 or all-1
# bits, which are valid Reed-Solomon codewords; after unmasking they are not.
_MASK = np.random.default_rng(0x5EED_F0D5).integers(0, 256, PAYLOAD_BYTES + PARITY_BYTES, dtype=np.uint8).tobytes()


def _xor_mask(data: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, _MASK, strict=True))


def _codec():
    from reedsolo import RSCodec

    return RSCodec(PARITY_BYTES)


def _to_bgr(image: Image.Image) -> np.ndarray:
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _from_bgr(bgr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1]).astype(np.uint8), mode="RGB")


def embed(image: Image.Image, payload: bytes) -> Image.Image:
    from imwatermark import WatermarkEncoder

    if min(image.size) < MIN_SIDE:
        raise ValueError(f"the watermark needs at least {MIN_SIDE} px per side, got {image.size}")
    if len(payload) != PAYLOAD_BYTES:
        raise ValueError(f"the payload is {PAYLOAD_BYTES} bytes")
    coded = _xor_mask(bytes(_codec().encode(payload)))
    headroom = np.minimum(np.asarray(image.convert("RGB"), dtype=np.uint8), WHITE_CEILING)
    encoder = WatermarkEncoder()
    encoder.set_watermark("bytes", coded)
    marked = encoder.encode(np.ascontiguousarray(headroom[:, :, ::-1]), METHOD, scales=SCALES)
    return _from_bgr(marked)


def extract(image: Image.Image) -> WatermarkReading | None:
    """The payload, or None when there is no readable watermark (too small, absent, too damaged)."""
    from imwatermark import WatermarkDecoder
    from reedsolo import ReedSolomonError

    if min(image.size) < MIN_SIDE:
        return None
    decoder = WatermarkDecoder("bytes", (PAYLOAD_BYTES + PARITY_BYTES) * 8)
    try:
        coded = _xor_mask(bytes(decoder.decode(_to_bgr(image), METHOD, scales=SCALES)))
        decoded, _, errata = _codec().decode(bytearray(coded))
    except (ReedSolomonError, ValueError, IndexError):
        return None
    payload = bytes(decoded)
    return WatermarkReading(generation_id=uuid.UUID(bytes=payload[:16]), index=payload[16],
                            corrected_bytes=len(errata))
