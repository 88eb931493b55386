"""Pure rules for training jobs: which post-training stages a job's kind goes through."""

from __future__ import annotations

TEXT_TO_IMAGE_KINDS = ("base", "finetune", "lora")
"""Kinds whose models draw from a prompt; an ``upscaler`` enlarges what its parent drew."""


def builds_attribution_index(recipe_kind: str) -> bool:
    """Influence is scored through the stage that decides what is drawn, so only it gets an index."""
    return recipe_kind in TEXT_TO_IMAGE_KINDS


def measures_quality(recipe_kind: str) -> bool:
    """The quality stage measures prompt-following at a base model's native size."""
    return recipe_kind == "base"
