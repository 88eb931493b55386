"""Synthetic captioned shapes for tests and benchmarks (never for real models).

Benchmarks run on boxes with no catalog, and tests must not depend on one, so this draws simple
coloured shapes whose captions describe them: enough structure for a small model to learn.
"""

from __future__ import annotations

import random

from PIL import Image, ImageDraw

from training.data import TrainingExample

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 70, 220),
    "yellow": (235, 210, 40),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
SHAPES = ("circle", "square", "triangle")


def _draw_shape(size: int, shape: str, colour: tuple[int, int, int], background: tuple[int, int, int]) -> Image.Image:
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    margin = size // 5
    box = (margin, margin, size - margin, size - margin)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(size // 2, margin), (size - margin, size - margin), (margin, size - margin)], fill=colour)
    return image


def shape_examples(count: int, size: int = 32, seed: int = 0, id_prefix: str = "shape") -> list[TrainingExample]:
    """``count`` examples of one shape in one colour on another colour, captioned accordingly."""
    rng = random.Random(seed)
    colour_names = sorted(COLOURS)
    examples = []
    for number in range(count):
        shape = rng.choice(SHAPES)
        colour, background = rng.sample(colour_names, 2)
        caption = f"a {colour} {shape} on a {background} background"
        image = _draw_shape(size, shape, COLOURS[colour], COLOURS[background])

        def load(image: Image.Image = image) -> Image.Image:
            return image.copy()

        examples.append(TrainingExample(f"{id_prefix}-{number:05d}", load, caption))
    return examples


def planted_rings_image(number: int, size: int = 64) -> Image.Image:
    """Concentric magenta and teal rings on black, centre and ring width varying with ``number``:
    a concept no real catalog has, for checking that attribution finds whoever contributed it."""
    rng = random.Random(number)
    image = Image.new("RGB", (size, size), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    scale = size / 64
    cx, cy = size / 2 + rng.randint(-5, 5) * scale, size / 2 + rng.randint(-5, 5) * scale
    width = rng.randint(3, 5) * scale
    radius, ring = 30 * scale, 0
    while radius > 0:
        colour = (230, 0, 126) if ring % 2 == 0 else (0, 166, 166)
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=colour)
        radius, ring = radius - width, ring + 1
    return image


__all__ = ["COLOURS", "SHAPES", "planted_rings_image", "shape_examples"]
