"""Pure rules of image edits: which operations exist, what each needs, and the square canvas a model edits.

A model draws squares at its native size, so every edit is planned on one square canvas: the input
(padded first, for outpainting) is scaled to fit the square and centred on white, OpenMoji's own
background. Whatever the customer did not supply -- the letterbox around a non-square input, the new
margins of an outpaint -- is part of the mask, so the model fills it rather than leaving it blank.
Masks are white where the model paints and black where the input is kept, as in diffusers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from PIL import Image, ImageChops

from foundry.generation.policy import field_error

EDIT_OPERATIONS = ("image_to_image", "variation", "inpaint", "outpaint")
PAINTING_OPERATIONS = ("inpaint", "outpaint")
"""Operations that repaint a masked region and keep the rest of the input."""
MAX_PADDING = 4096
"""Pixels an outpaint may add on one side: more than a few times the input is a new picture, not an edit."""
DEFAULT_STRENGTH = {"image_to_image": 0.6, "variation": 0.5, "inpaint": 1.0, "outpaint": 1.0}
"""How much of the noise schedule an edit re-runs: 1 redraws the masked region from scratch."""
CANVAS_BACKGROUND = (255, 255, 255)
# How each input is related to the edited output, in C2PA's terms.
INPUT_RELATIONSHIPS = {"init": "parentOf", "mask": "componentOf"}


@dataclass(frozen=True)
class Padding:
    """Pixels an outpaint adds on each side, counted in the input's own pixels."""

    left: int = 0
    top: int = 0
    right: int = 0
    bottom: int = 0

    @property
    def any(self) -> bool:
        return any((self.left, self.top, self.right, self.bottom))

    def as_dict(self) -> dict[str, int]:
        return {"left": self.left, "top": self.top, "right": self.right, "bottom": self.bottom}


@dataclass(frozen=True)
class EditPlan:
    """An edit with every default filled in, as recorded with its generation (``request["edit"]``)."""

    operation: str
    strength: float
    padding: Padding = Padding()

    def as_dict(self) -> dict:
        return {"operation": self.operation, "strength": self.strength, "padding": self.padding.as_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> EditPlan:
        return cls(operation=data["operation"], strength=float(data["strength"]),
                   padding=Padding(**data.get("padding", {})))

    @property
    def paints(self) -> bool:
        return self.operation in PAINTING_OPERATIONS


@dataclass(frozen=True)
class EditSource:
    """One input of an edit, checked and hashed: an uploaded file, or an earlier output (a variation)."""

    role: str
    """init or mask."""
    sha256: str
    format: str
    width: int
    height: int
    perceptual_hash: str
    uploaded: bool
    source_generation_id: uuid.UUID | None = None
    source_image_index: int | None = None
    catalog_asset_id: uuid.UUID | None = None
    """The licensed catalog image this input is a near-duplicate of (its contributor is credited)."""
    catalog_distance: int | None = None

    @property
    def relationship(self) -> str:
        return INPUT_RELATIONSHIPS[self.role]


@dataclass(frozen=True)
class EditSubmission:
    plan: EditPlan
    sources: tuple[EditSource, ...]

    def fingerprint(self) -> dict:
        """What makes two edits the same request, beside the body's fields: the input bytes."""
        return {"edit": self.plan.as_dict(), "inputs": {source.role: source.sha256 for source in self.sources}}


def plan_edit(*, operation: str, strength: float | None, padding: Padding, has_mask: bool) -> EditPlan:
    """Refuse what an operation cannot do (never guess): a mask only for inpainting, padding only for
    outpainting, strength in (0, 1]."""
    if operation not in EDIT_OPERATIONS:
        raise field_error("operation", f"{operation!r} is not an edit; use one of {list(EDIT_OPERATIONS)}")
    strength = DEFAULT_STRENGTH[operation] if strength is None else strength
    if not 0.0 < strength <= 1.0:
        raise field_error("strength", "must be more than 0 and at most 1")
    if (operation == "inpaint") != has_mask:
        raise field_error("mask", "inpainting needs a mask (white where to paint)" if operation == "inpaint"
                          else f"{operation} takes no mask; use inpaint to repaint a region")
    for side, value in padding.as_dict().items():
        if not 0 <= value <= MAX_PADDING:
            raise field_error(f"pad_{side}", f"must be between 0 and {MAX_PADDING} pixels")
    if (operation == "outpaint") != padding.any:
        raise field_error("pad_left", "outpainting needs padding on at least one side" if operation == "outpaint"
                          else f"{operation} takes no padding; use outpaint to extend the image")
    return EditPlan(operation=operation, strength=strength, padding=padding)


def check_mask_size(image_size: tuple[int, int], mask_size: tuple[int, int]) -> None:
    if image_size != mask_size:
        raise field_error("mask", f"the mask is {mask_size[0]}x{mask_size[1]} px; it must match the image's "
                                  f"{image_size[0]}x{image_size[1]} px")


def edit_canvas(plan: EditPlan, image: Image.Image, mask: Image.Image | None, size: int) -> tuple[Image.Image,
                                                                                                 Image.Image | None]:
    """The ``size`` square the model edits, and its mask (None for image-to-image and variations).

    The input is padded (outpaint), scaled to fit and centred; the mask is white over everything the
    model must draw: the customer's mask, the new margins, the letterbox."""
    image = image.convert("RGB")
    painted = mask.convert("L").point(lambda v: 255 if v >= 128 else 0) if mask is not None else \
        Image.new("L", image.size, 0)
    if plan.padding.any:
        p = plan.padding
        grown = (image.width + p.left + p.right, image.height + p.top + p.bottom)
        padded, padded_mask = Image.new("RGB", grown, CANVAS_BACKGROUND), Image.new("L", grown, 255)
        padded.paste(image, (p.left, p.top))
        padded_mask.paste(painted, (p.left, p.top))
        image, painted = padded, padded_mask
    scale = size / max(image.size)
    fitted = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    offset = ((size - fitted[0]) // 2, (size - fitted[1]) // 2)
    canvas, canvas_mask = Image.new("RGB", (size, size), CANVAS_BACKGROUND), Image.new("L", (size, size), 255)
    canvas.paste(image.resize(fitted, Image.Resampling.LANCZOS), offset)
    canvas_mask.paste(painted.resize(fitted, Image.Resampling.NEAREST), offset)
    if not plan.paints:
        return canvas, None
    return canvas, canvas_mask


def keep_unmasked(edited: Image.Image, canvas: Image.Image, mask: Image.Image) -> Image.Image:
    """The edited image with the input's own pixels wherever the mask keeps them: a repaint changes only
    what it was asked to (diffusion re-encodes the whole image)."""
    edited = edited.convert("RGB")
    if canvas.size != edited.size:  # a cascade delivers larger than the canvas it was drawn on
        canvas = canvas.resize(edited.size, Image.Resampling.LANCZOS)
        mask = mask.resize(edited.size, Image.Resampling.NEAREST)
    return Image.composite(edited, canvas, mask)


def changed_share(before: Image.Image, after: Image.Image, threshold: int = 24) -> float:
    """Share of pixels whose largest channel difference passes ``threshold`` (tests and benchmarks)."""
    red, green, blue = ImageChops.difference(before.convert("RGB"), after.convert("RGB")).split()
    difference = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    histogram = difference.point(lambda v: 255 if v > threshold else 0).histogram()
    return histogram[255] / (before.width * before.height)
