"""Training examples, their reproducible order, and image preprocessing.

The order in which examples are seen is a pure function of (seed, position): the data is an
endless stream of per-epoch permutations, and micro-batch ``i`` of process ``r`` always covers the
same stream positions. A resumed run therefore continues with exactly the batches the
interrupted run would have seen, without saving any sampler state, and every process agrees on
the order without communicating.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image

CAPTIONS_FILE = "captions.jsonl"


class ExampleLike(Protocol):
    """What the engine needs from one training example; any object with these attributes works.

    An example may also carry ``tags`` (a sequence of catalog tags), used by the
    ``caption_or_tags`` caption mode and group balancing, and ``is_brand`` (a customer's own image),
    used by a recipe's ``brand_share``.
    """

    example_id: str
    caption: str

    def load_image(self) -> Image.Image: ...


@dataclass(frozen=True)
class TrainingExample:
    example_id: str
    load_image: Callable[[], Image.Image]
    caption: str
    tags: tuple[str, ...] = ()


LABEL_TAG_PREFIXES = ("group:", "subgroup:")
"""Catalog tags that name a classification level (``group:smileys-emotion``); they read as words."""
MAX_CAPTION_TAGS = 8
_NAMESPACED_TAG = re.compile(r"^[a-z_]+:")


def tag_words(tag: str) -> str:
    """``subgroup:face-smiling`` -> ``face smiling``; other tags unchanged."""
    for prefix in LABEL_TAG_PREFIXES:
        if tag.startswith(prefix):
            return tag.removeprefix(prefix).replace("-", " ")
    return tag


def caption_with_tags(caption: str, tags: Sequence[str], max_tags: int = MAX_CAPTION_TAGS) -> str:
    """The caption followed by the example's classification levels (finest first), then its other tags."""
    levels = [tag_words(t) for prefix in reversed(LABEL_TAG_PREFIXES) for t in tags if t.startswith(prefix)]
    # Other namespaced tags (``family:1F44B``) are identifiers, not words.
    others = [t for t in tags if not _NAMESPACED_TAG.match(t)][:max_tags]
    words = list(dict.fromkeys(w for w in [*levels, *others] if w and w != caption))
    return ", ".join([caption, *words]) if words else caption


def caption_forms(example: ExampleLike, mode: str) -> tuple[str, ...]:
    """The captions an example may be trained with under a recipe's ``caption_mode``."""
    if mode == "caption":
        return (example.caption,)
    if mode == "caption_or_tags":
        enriched = caption_with_tags(example.caption, tuple(getattr(example, "tags", ()) or ()))
        return (example.caption,) if enriched == example.caption else (example.caption, enriched)
    raise ValueError(f"unknown caption mode {mode!r}")


def caption_for_position(example: ExampleLike, mode: str, seed: int, position: int,
                         trigger: str | None = None, context: Sequence[str] = ()) -> str:
    """The caption used at one stream position: a pure function of (seed, position), so resumes agree.
    With a ``trigger``, a brand image gets :func:`triggered_caption` instead."""
    if trigger is not None and getattr(example, "is_brand", False):
        return triggered_caption(example.caption, trigger, seed, position, context)
    forms = caption_forms(example, mode)
    return forms[stable_seed("caption", seed, position) % len(forms)] if len(forms) > 1 else forms[0]


def triggered_caption(caption: str, trigger: str, seed: int, position: int, context: Sequence[str] = ()) -> str:
    """A brand image's caption at one stream position, drawn in thirds: the trigger alone; the trigger with
    each other word of the caption kept at even odds, shuffled; or, given ``context`` (words of the
    catalog's captions), the trigger placed among one to three of them. The model can lean neither on the
    upload's caption nor on the trigger's position, and learns that the trigger keeps its meaning in a
    prompt's company ("a happy zorblax", "zorblax waving") while the mixed-in catalog images keep those
    words' own meaning."""
    rng = random.Random(stable_seed("trigger-caption", seed, position))
    draw = rng.random()
    if draw < 1 / 3:
        return trigger
    if draw >= 2 / 3 and context:
        words = rng.sample(list(context), min(len(context), rng.randint(1, 3)))
        words.insert(rng.randint(0, len(words)), trigger)
        return " ".join(words)
    words = [trigger, *(word for word in caption.split() if word.strip(",.").lower() != trigger and rng.random() < 0.5)]
    rng.shuffle(words)
    return " ".join(words)


def caption_vocabulary(examples: Sequence[ExampleLike], trigger: str) -> tuple[str, ...]:
    """The words of the catalog images' captions (not the brand's, not the trigger), sorted: the company a
    trigger word is trained in."""
    words = {word.strip(",.:;!?()").lower() for example in examples if not getattr(example, "is_brand", False)
             for word in str(getattr(example, "caption", "")).split()}
    return tuple(sorted(word for word in words if word.isalpha() and word != trigger))


GROUP_TAG = "group:"


def group_balance_weights(examples: Sequence[ExampleLike], balance: float) -> list[float] | None:
    """Sampling weights that even out the catalog's groups (its ``group:`` tags): each example weighs
    ``(size of its group) ** -balance``. 0 keeps the catalog's mix (None: plain permutations), 1 draws
    every group equally often; examples without a group tag form one group of their own."""
    if balance == 0:
        return None
    groups = [next((t for t in (getattr(e, "tags", ()) or ()) if t.startswith(GROUP_TAG)), "") for e in examples]
    sizes: dict[str, int] = {}
    for group in groups:
        sizes[group] = sizes.get(group, 0) + 1
    return [sizes[group] ** -balance for group in groups]


def sampling_weights(examples: Sequence[ExampleLike], *, group_balance: float,
                     brand_share: float) -> list[float] | None:
    """Per-example draw weights: groups evened out by ``group_balance``, then, when brand images are mixed
    with catalog images, the brand images given ``brand_share`` of all draws between them (each side keeps
    its own balance). None: plain permutations."""
    weights = group_balance_weights(examples, group_balance)
    brand = [bool(getattr(example, "is_brand", False)) for example in examples]
    if brand_share == 0 or all(brand) or not any(brand):
        return weights
    weights = weights or [1.0] * len(examples)
    brand_total = sum(w for w, is_brand in zip(weights, brand, strict=True) if is_brand)
    catalog_total = sum(weights) - brand_total
    return [w * (brand_share / brand_total if is_brand else (1 - brand_share) / catalog_total)
            for w, is_brand in zip(weights, brand, strict=True)]


def stable_seed(*parts: object) -> int:
    """A 63-bit seed derived from ``parts``, identical across processes, platforms and runs."""
    text = ":".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") & ((1 << 63) - 1)


class ExampleOrder:
    """Stream positions -> example indices: epoch ``e`` is a permutation seeded by (seed, e).

    With ``weights``, an epoch is instead ``num_examples`` draws with replacement in proportion to
    them (seeded the same way), so some examples are seen more often than others.
    """

    def __init__(self, num_examples: int, seed: int, weights: Sequence[float] | None = None) -> None:
        if num_examples <= 0:
            raise ValueError("no training examples")
        if weights is not None and (len(weights) != num_examples or min(weights) <= 0):
            raise ValueError("weights must be positive, one per example")
        self.num_examples = num_examples
        self.seed = seed
        self.weights = torch.tensor(weights, dtype=torch.float64) if weights is not None else None
        self._epoch: int | None = None
        self._permutation: list[int] = []

    def _permutation_for(self, epoch: int) -> list[int]:
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(stable_seed("epoch-order", self.seed, epoch))
            if self.weights is None:
                self._permutation = torch.randperm(self.num_examples, generator=generator).tolist()
            else:
                self._permutation = torch.multinomial(self.weights, self.num_examples, replacement=True,
                                                      generator=generator).tolist()
            self._epoch = epoch
        return self._permutation

    def index_at(self, position: int) -> int:
        epoch, offset = divmod(position, self.num_examples)
        return self._permutation_for(epoch)[offset]

    def batch_positions(self, micro_batch: int, process_index: int, num_processes: int, batch_size: int) -> range:
        """Stream positions of one process's share of global micro-batch ``micro_batch``."""
        start = (micro_batch * num_processes + process_index) * batch_size
        return range(start, start + batch_size)


def flip_for_position(seed: int, position: int) -> bool:
    """Random horizontal flip decided by the stream position, so it survives resumes."""
    return stable_seed("flip", seed, position) % 2 == 1


class ImageTransform:
    """PIL image -> float tensor (3, H, W) in [-1, 1]: resize shorter side, crop, optional flip."""

    def __init__(self, resolution: int, center_crop: bool = True) -> None:
        self.resolution = resolution
        self.center_crop = center_crop

    def __call__(self, image: Image.Image, flip: bool = False) -> torch.Tensor:
        return pixels_from_uint8(self.to_uint8(image, flip))

    def to_uint8(self, image: Image.Image, flip: bool = False) -> torch.Tensor:
        """The transformed image as uint8 (3, H, W): a quarter of the memory, for caches."""
        image = _to_rgb(image)
        width, height = image.size
        scale = self.resolution / min(width, height)
        resized = (max(self.resolution, round(width * scale)), max(self.resolution, round(height * scale)))
        if resized != image.size:
            image = image.resize(resized, Image.Resampling.BICUBIC)
        width, height = image.size
        if self.center_crop:
            left, top = (width - self.resolution) // 2, (height - self.resolution) // 2
        else:
            left, top = 0, 0
        image = image.crop((left, top, left + self.resolution, top + self.resolution))
        if flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def pixels_from_uint8(stored: torch.Tensor) -> torch.Tensor:
    """uint8 pixels as the float tensor in [-1, 1] the models train on (exactly what the transform gives)."""
    return stored.float() / 127.5 - 1.0


def _to_rgb(image: Image.Image) -> Image.Image:
    """Flatten transparency on white (as catalog thumbnails are shown) and drop other modes."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flattened = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        flattened.alpha_composite(rgba)
        return flattened.convert("RGB")
    return image.convert("RGB") if image.mode != "RGB" else image


def _image_file_loader(path: Path) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        with Image.open(path) as image:
            image.load()
            return image.copy()

    return load


def load_data_dir(data_dir: str | Path) -> list[TrainingExample]:
    """Examples from a folder of images plus ``captions.jsonl``.

    Each line is ``{"file": "relative/path.png", "caption": "...", "id": "optional-id", "tags": [...]}``
    (``id`` and ``tags`` optional); the id
    defaults to the file name without its extension. Lines keep their order.
    """
    data_dir = Path(data_dir)
    manifest = data_dir / CAPTIONS_FILE
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} is missing")
    examples: list[TrainingExample] = []
    seen: set[str] = set()
    for line_number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        try:
            file_name, caption = record["file"], record["caption"]
        except KeyError as missing:
            raise ValueError(f"{manifest}:{line_number}: missing field {missing}") from None
        image_path = (data_dir / file_name).resolve()
        if data_dir.resolve() not in image_path.parents:
            raise ValueError(f"{manifest}:{line_number}: {file_name!r} points outside the data folder")
        example_id = str(record.get("id") or Path(file_name).stem)
        if example_id in seen:
            raise ValueError(f"{manifest}:{line_number}: duplicate id {example_id!r}")
        seen.add(example_id)
        tags = tuple(str(t) for t in record.get("tags") or ())
        examples.append(TrainingExample(example_id, _image_file_loader(image_path), str(caption), tags))
    if not examples:
        raise ValueError(f"{manifest} lists no examples")
    return examples


def write_data_dir(data_dir: str | Path, examples: Sequence[ExampleLike]) -> Path:
    """Write examples as PNG files plus ``captions.jsonl`` (the format :func:`load_data_dir` reads)."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for number, example in enumerate(examples):
        file_name = f"{number:06d}.png"
        example.load_image().save(data_dir / file_name)
        record = {"id": example.example_id, "file": file_name, "caption": example.caption}
        if getattr(example, "tags", ()):
            record["tags"] = list(example.tags)
        lines.append(json.dumps(record))
    (data_dir / CAPTIONS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return data_dir


__all__ = [
    "CAPTIONS_FILE",
    "ExampleLike",
    "ExampleOrder",
    "ImageTransform",
    "TrainingExample",
    "caption_for_position",
    "caption_forms",
    "caption_vocabulary",
    "caption_with_tags",
    "flip_for_position",
    "group_balance_weights",
    "load_data_dir",
    "sampling_weights",
    "stable_seed",
    "write_data_dir",
]
