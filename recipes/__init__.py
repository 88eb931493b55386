"""The recipe schema: frozen, JSON-serialisable descriptions of one training job, and the presets.

A neutral leaf that imports only the standard library, so the domain core (``foundry``: job
schemas, use cases) and the engine (``training``) share one definition without ``foundry``
importing ``training``. The code lives in :mod:`recipes.schema`.
"""

from recipes.schema import (
    CAPTION_MODES,
    CUSTOM_MODEL_SETTINGS,
    CUSTOM_TRIGGER_SETTINGS,
    DEFAULT_GUIDANCE_SCALE,
    LR_SCHEDULERS,
    MAX_TRAIN_STEPS,
    PRESETS,
    RECIPE_FACTORIES,
    RECIPE_KINDS,
    REGISTERED_BASE_PLACEHOLDER,
    TRIGGER_PATTERN,
    UPSCALER_SHAPE,
    AttentionBackend,
    BaseModelShape,
    MixedPrecision,
    Recipe,
    RecipeKind,
    TextPretraining,
    TorchCompile,
    base_recipe,
    finetune_recipe,
    lora_recipe,
    preset_recipe,
    recipe_for_job,
    serving_guidance,
    upscaler_recipe,
)

__all__ = [
    "CAPTION_MODES",
    "CUSTOM_MODEL_SETTINGS",
    "CUSTOM_TRIGGER_SETTINGS",
    "DEFAULT_GUIDANCE_SCALE",
    "LR_SCHEDULERS",
    "MAX_TRAIN_STEPS",
    "PRESETS",
    "RECIPE_FACTORIES",
    "RECIPE_KINDS",
    "REGISTERED_BASE_PLACEHOLDER",
    "TRIGGER_PATTERN",
    "UPSCALER_SHAPE",
    "AttentionBackend",
    "BaseModelShape",
    "MixedPrecision",
    "Recipe",
    "RecipeKind",
    "TextPretraining",
    "TorchCompile",
    "base_recipe",
    "finetune_recipe",
    "lora_recipe",
    "preset_recipe",
    "recipe_for_job",
    "serving_guidance",
    "upscaler_recipe",
]
