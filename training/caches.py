"""Caches for the outputs of frozen models, filled lazily as examples first enter a batch.

A frozen VAE gives the same latent distribution for the same image every time, and a frozen
text encoder the same embedding for the same caption, so computing them once per epoch is
wasted work. Entries are filled when an example first enters a batch (never ahead of it, so the
license gate sees every id before its image is read) and are computed one item at a time, which
makes each cached value independent of which other items shared its batch: a resumed run, whose
first batches find an empty cache, gets bit-identical values. Values live on the CPU so the cache
does not compete with training for accelerator memory.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import torch


class TensorCache:
    """key -> CPU tensor, computed per missing key by ``compute(key) -> tensor``."""

    def __init__(self, compute: Callable[[Hashable], torch.Tensor]) -> None:
        self._compute = compute
        self._values: dict[Hashable, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._values

    def get_batch(self, keys: Sequence[Hashable], device: torch.device) -> torch.Tensor:
        for key in keys:
            if key not in self._values:
                self._values[key] = self._compute(key).detach().to("cpu")
        return torch.stack([self._values[key] for key in keys]).to(device, non_blocking=True)


__all__ = ["TensorCache"]
