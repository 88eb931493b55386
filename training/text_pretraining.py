"""Contrastive pre-training of the ``base`` text encoder on the training snapshot's own pairs.

A text encoder learnt jointly with a UNet from nothing learns slowly: for most of a short run the
UNet is chasing embeddings that still move. Here the text encoder first learns, with a small
throw-away image tower, to pick each training image's caption out of a batch (CLIP's symmetric
InfoNCE objective) - on the licensed snapshot only, so the lineage stays the foundry's own. The
encoder is then frozen; captions that describe similar pictures ("grinning face", "beaming face
with smiling eyes") already sit close together when the UNet starts, and their embeddings are
computed once and cached.

Captions are padded only to the longest one in a batch: the CLIP text model is causal, so the
hidden states of real tokens do not depend on the padding after them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from recipes import TextPretraining

Progress = Callable[[int, int, float], None]


class ImageTower(nn.Module):
    """A small convolutional encoder for 32-64 px images; only used during pre-training."""

    def __init__(self, width: int, embedding_size: int) -> None:
        super().__init__()

        def stage(inputs: int, outputs: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(inputs, outputs, 3, padding=1), nn.GroupNorm(8, outputs), nn.SiLU(),
                nn.Conv2d(outputs, outputs, 3, padding=1), nn.GroupNorm(8, outputs), nn.SiLU(),
            )

        self.layers = nn.Sequential(
            stage(3, width), nn.AvgPool2d(2), stage(width, 2 * width), nn.AvgPool2d(2), stage(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, embedding_size),
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.layers(pixels)


def _pooled_text(text_encoder: nn.Module, tokenizer: Any, captions: list[str]) -> torch.Tensor:
    """The hidden state at each caption's end-of-text token (CLIP's pooled output), before projection."""
    tokens = tokenizer([c.lower().strip() for c in captions], padding="longest", truncation=True,
                       max_length=tokenizer.model_max_length, return_tensors="pt")
    hidden = text_encoder(tokens.input_ids, attention_mask=tokens.attention_mask)[0]
    end = (tokens.input_ids == tokenizer.eos_token_id).int().argmax(dim=-1)
    return hidden[torch.arange(len(captions)), end]


def pretrain_text_encoder(
    text_encoder: nn.Module,
    tokenizer: Any,
    pixels: torch.Tensor,
    captions: Sequence[Sequence[str]],
    settings: TextPretraining,
    *,
    seed: int,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train ``text_encoder`` in place on (image, caption) pairs and return a report for the lineage.

    ``pixels``: float (N, 3, R, R) in [-1, 1]; ``captions[i]``: the caption forms of image ``i``
    (one is drawn per visit). Deterministic for a given seed and data order.
    """
    if len(pixels) != len(captions) or len(pixels) < 2:
        raise ValueError("text pre-training needs at least two images, each with its captions")
    started = time.perf_counter()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    hidden_size = text_encoder.config.hidden_size
    image_tower = ImageTower(settings.image_width, hidden_size)
    text_projection = nn.Linear(hidden_size, hidden_size, bias=False)
    logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    parameters = [*image_tower.parameters(), *text_encoder.parameters(), *text_projection.parameters(), logit_scale]
    batch_size = min(settings.batch_size, len(pixels))
    batches_per_epoch = max(1, len(pixels) // batch_size)
    total = settings.epochs * batches_per_epoch
    optimizer = torch.optim.AdamW(parameters, settings.learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, settings.learning_rate, total_steps=total)
    text_encoder.train()
    done, loss_value = 0, float("nan")
    for _epoch in range(settings.epochs):
        order = torch.randperm(len(pixels), generator=generator)
        for number in range(batches_per_epoch):
            chosen = order[number * batch_size:(number + 1) * batch_size].tolist()
            texts = [captions[i][int(torch.randint(len(captions[i]), (1,), generator=generator))] for i in chosen]
            images = pixels[chosen]
            if torch.rand(1, generator=generator).item() < 0.5:
                images = images.flip(3)
            image_embeddings = F.normalize(image_tower(images), dim=-1)
            text_embeddings = F.normalize(text_projection(_pooled_text(text_encoder, tokenizer, texts)), dim=-1)
            logits = logit_scale.exp().clamp(max=100.0) * image_embeddings @ text_embeddings.T
            targets = torch.arange(len(chosen))
            loss = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            done += 1
            loss_value = float(loss.item())
            if progress is not None:
                progress(done, total, loss_value)
    text_encoder.eval().requires_grad_(False)
    return {
        "objective": "contrastive image-caption (CLIP InfoNCE) on the training snapshot",
        "pairs": len(pixels),
        "epochs": settings.epochs,
        "steps": total,
        "batch_size": batch_size,
        "final_loss": round(loss_value, 5),
        "image_tower": f"conv width {settings.image_width}, discarded after pre-training",
        "seconds": round(time.perf_counter() - started, 1),
    }


__all__ = ["ImageTower", "pretrain_text_encoder"]
