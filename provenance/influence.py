"""Per-output influence: which training images shaped this output, by projected gradients.

The method follows D-TRAK (Zheng et al., ICLR 2024): a training example and an output are each
described by the gradient of a simple function of the diffusion model's prediction -- the
squared norm of the model output at K fixed timesteps with fixed noise -- with respect to a
small subset of parameters, randomly projected to a few thousand dimensions and averaged over
the timesteps. Influence is then the kernel-regularised inner product

    score(train i, output q) = phi_i^T (Phi^T Phi + lambda I)^-1 phi_q

over the whole training set Phi. Everything here is deterministic given the config (timesteps,
noise seed, projection seed), so an index built at the end of training and a query computed
at generation time live in the same space, and a statement can be recomputed from the
parameters recorded with the generation.

The projection is a count sketch (each parameter coordinate goes to one seeded bucket with a
seeded sign): linear in the parameter count, no dense random matrix, identical every time.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction

import numpy as np
import torch

METHOD = "dtrak-square-countsketch"
VERSION = "1"


@dataclass(frozen=True)
class InfluenceConfig:
    timesteps: tuple[int, ...] = (100, 300, 500, 700, 900)
    noise_seed: int = 20240501
    projection_dim: int = 2048
    projection_seed: int = 7
    damping: float = 0.1
    """lambda, relative to the mean diagonal of Phi^T Phi (scale-free across models)."""
    parameters: str = "auto"
    """``lora`` (LoRA weights), ``tail`` (the last up-block and conv_out), or ``auto`` (LoRA if present)."""

    def as_dict(self) -> dict:
        return {"method": METHOD, "version": VERSION, **asdict(self)}


class CountSketch:
    """y[h(i)] += s(i) * x[i] with seeded h and s: a linear projection that costs one pass."""

    def __init__(self, dim_in: int, dim_out: int, seed: int):
        generator = torch.Generator().manual_seed(seed)
        self.dim_in, self.dim_out = dim_in, dim_out
        self.buckets = torch.randint(0, dim_out, (dim_in,), generator=generator)
        self.signs = torch.randint(0, 2, (dim_in,), generator=generator).to(torch.float32) * 2 - 1

    def __call__(self, vector: torch.Tensor) -> torch.Tensor:
        if vector.shape != (self.dim_in,):
            raise ValueError(f"expected a vector of {self.dim_in} values, got {tuple(vector.shape)}")
        out = torch.zeros(self.dim_out, dtype=torch.float32)
        return out.index_add_(0, self.buckets, vector.detach().to(torch.float32).cpu() * self.signs)


def select_parameters(unet: torch.nn.Module, mode: str = "auto") -> list[tuple[str, torch.nn.Parameter]]:
    """The parameters whose gradients describe an example: LoRA weights, or the UNet's tail."""
    named = list(unet.named_parameters())
    lora = [(name, p) for name, p in named if "lora_" in name]
    if mode == "lora" or (mode == "auto" and lora):
        if not lora:
            raise ValueError("the model has no LoRA parameters")
        return lora
    if mode not in ("auto", "tail"):
        raise ValueError(f"unknown parameter subset {mode!r}")
    last_up = len(getattr(unet, "up_blocks", [])) - 1
    tail = [(name, p) for name, p in named
            if name.startswith((f"up_blocks.{last_up}.", "conv_out."))]
    if not tail:
        raise ValueError("the UNet has neither up_blocks nor conv_out")
    return tail


class Featurizer:
    """Projected, timestep-averaged gradients of ||model output||^2 for one example at a time."""

    def __init__(self, unet: torch.nn.Module, noise_scheduler, config: InfluenceConfig,
                 sample_shape: Sequence[int]):
        self.unet, self.scheduler, self.config = unet, noise_scheduler, config
        self.parameters = select_parameters(unet, config.parameters)
        self.dim_in = sum(p.numel() for _, p in self.parameters)
        self.sketch = CountSketch(self.dim_in, config.projection_dim, config.projection_seed)
        generator = torch.Generator().manual_seed(config.noise_seed)
        self.noises = [torch.randn(tuple(sample_shape), generator=generator) for _ in config.timesteps]

    def __call__(self, sample: torch.Tensor, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        """``sample``: the example in the model's input space (pixels in [-1, 1] or VAE latents), (C, H, W)."""
        params = [p for _, p in self.parameters]
        wanted = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(True)
        device = params[0].device
        total = torch.zeros(self.config.projection_dim)
        try:
            for timestep, noise in zip(self.config.timesteps, self.noises, strict=True):
                t = torch.tensor([timestep], device=device)
                noisy = self.scheduler.add_noise(sample[None].to(device), noise[None].to(device), t)
                output = self.unet(noisy, t, encoder_hidden_states=encoder_hidden_states.to(device)).sample
                grads = torch.autograd.grad(output.float().pow(2).sum(), params)
                total += self.sketch(torch.cat([g.reshape(-1) for g in grads]))
        finally:
            for p, flag in zip(params, wanted, strict=True):
                p.requires_grad_(flag)
        return total / len(self.config.timesteps)


@dataclass
class InfluenceIndex:
    """Training features, pre-multiplied by the regularised inverse kernel: score = projected @ query."""

    asset_ids: list[uuid.UUID]
    contributor_ids: list[uuid.UUID]
    projected: np.ndarray
    config: dict
    fingerprint: dict = field(default_factory=dict)
    """What the index is valid for: snapshot Merkle root and model weights digest."""

    @classmethod
    def build(cls, features: np.ndarray, *, asset_ids: Sequence[uuid.UUID], contributor_ids: Sequence[uuid.UUID],
              config: InfluenceConfig, fingerprint: Mapping[str, str]) -> InfluenceIndex:
        phi = np.asarray(features, dtype=np.float64)
        if phi.ndim != 2 or phi.shape[0] != len(asset_ids) or len(asset_ids) != len(contributor_ids):
            raise ValueError("one feature row per asset, with its contributor")
        kernel = phi.T @ phi
        damping = config.damping * max(float(np.trace(kernel)) / kernel.shape[0], 1e-12)
        kernel[np.diag_indices_from(kernel)] += damping
        projected = np.linalg.solve(kernel, phi.T).T  # (n, d) = Phi (Phi^T Phi + lambda I)^-1
        return cls(list(asset_ids), list(contributor_ids), projected.astype(np.float32), config.as_dict(),
                   dict(fingerprint))

    def valid_for(self, fingerprint: Mapping[str, str]) -> bool:
        return self.fingerprint == dict(fingerprint)

    def scores(self, query: np.ndarray) -> np.ndarray:
        return self.projected @ np.asarray(query, dtype=np.float32)

    def save(self, path) -> None:
        np.savez_compressed(path, projected=self.projected,
                            asset_ids=np.array([str(a) for a in self.asset_ids]),
                            contributor_ids=np.array([str(c) for c in self.contributor_ids]),
                            config=np.array(repr(sorted(self.config.items()))),
                            fingerprint=np.array(repr(sorted(self.fingerprint.items()))))

    @classmethod
    def load(cls, path) -> InfluenceIndex:
        import ast

        with np.load(path, allow_pickle=False) as data:
            return cls([uuid.UUID(a) for a in data["asset_ids"]], [uuid.UUID(c) for c in data["contributor_ids"]],
                       data["projected"], dict(ast.literal_eval(str(data["config"]))),
                       dict(ast.literal_eval(str(data["fingerprint"]))))


@dataclass(frozen=True)
class InfluenceShares:
    contributors: dict[uuid.UUID, Fraction]
    """Each contributor's exact share of the influence part (sums to 1, or empty)."""
    assets: list[tuple[uuid.UUID, Fraction]]
    """The kept assets and their shares, largest first."""
    parameters: dict


def influence_shares(scores: Sequence[float], asset_ids: Sequence[uuid.UUID], contributor_ids: Sequence[uuid.UUID],
                     *, top_k: int = 50, min_share: Fraction = Fraction(1, 100)) -> InfluenceShares:
    """Negative scores clipped, the top ``top_k`` assets kept, contributors under ``min_share``
    dropped (their part goes to the rest). Shares are exact fractions of the float scores."""
    parameters = {"top_k": top_k, "min_share": f"{min_share.numerator}/{min_share.denominator}", "clip": "negative"}
    ranked = sorted(((float(s), a, c) for s, a, c in zip(scores, asset_ids, contributor_ids, strict=True)
                     if float(s) > 0), key=lambda item: (-item[0], str(item[1])))[:top_k]
    total = sum(Fraction(score) for score, _, _ in ranked)
    if total == 0:
        return InfluenceShares({}, [], parameters)
    per_contributor: dict[uuid.UUID, Fraction] = {}
    for score, _, contributor in ranked:
        per_contributor[contributor] = per_contributor.get(contributor, Fraction(0)) + Fraction(score) / total
    kept = {c: share for c, share in per_contributor.items() if share >= min_share}
    kept_total = sum(kept.values())
    contributors = {c: share / kept_total for c, share in kept.items()}
    assets = [(asset, Fraction(score) / total) for score, asset, contributor in ranked if contributor in contributors]
    return InfluenceShares(contributors, assets, parameters)


def blend(pro_rata: Mapping[uuid.UUID, Fraction], influence: Mapping[uuid.UUID, Fraction],
          alpha: Fraction) -> dict[uuid.UUID, Fraction]:
    """alpha of the pool by influence, the rest pro rata; all influence to pro rata when there is none."""
    if not 0 <= alpha <= 1:
        raise ValueError("alpha is a fraction between 0 and 1")
    if not influence:
        alpha = Fraction(0)
    pro_total, influence_total = sum(pro_rata.values()), sum(influence.values())
    weights: dict[uuid.UUID, Fraction] = {}
    if pro_total:
        for contributor, weight in pro_rata.items():
            weights[contributor] = weights.get(contributor, Fraction(0)) + (1 - alpha) * weight / pro_total
    if influence_total and alpha:
        for contributor, weight in influence.items():
            weights[contributor] = weights.get(contributor, Fraction(0)) + alpha * weight / influence_total
    return {c: w for c, w in weights.items() if w > 0}
