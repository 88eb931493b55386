"""Influence features: D-TRAK gradients of a diffusers pipeline's UNet, count-sketched.

The torch half of ``provenance.influence`` (which holds the method's config, index and scores):
a training image with its caption, or an output with its prompt, becomes one feature row.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from diffusers import DDPMScheduler
from PIL import Image
from torch.func import functional_call, grad, vmap

from provenance.influence import InfluenceConfig, InfluenceIndex, OutputScores, pixel_codes, pixel_row
from training.influence_preconditioner import (
    FIT_SEED_OFFSET,
    KroneckerPreconditioner,
    fit_preconditioner,
    from_block_arrays,
)
from training.losses import regression_target
from training.pipelines import drawing_pipeline, pipeline_call_kwargs


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


class _TailReached(Exception):
    """Raised by the hook on the UNet's last up-block: the frozen trunk has run, the tail has its inputs."""


class _Tail(torch.nn.Module):
    """The UNet after its trunk: the last up-block, the output norm and activation, ``conv_out``."""

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.up_block, self.conv_out = unet.up_blocks[-1], unet.conv_out
        self.norm, self.act = unet.conv_norm_out, unet.conv_act

    def forward(self, hidden_states, res_hidden_states_tuple, temb):
        sample = self.up_block(hidden_states=hidden_states, temb=temb, res_hidden_states_tuple=res_hidden_states_tuple)
        if self.norm is not None:
            sample = self.act(self.norm(sample))
        return self.conv_out(sample)


def _tail_names(unet: torch.nn.Module, parameters: Sequence[tuple[str, torch.nn.Parameter]]) -> list[str] | None:
    """The chosen parameters' names inside ``_Tail``, when they all live there and it has no attention
    (so it can be differentiated per example with ``torch.func.vmap``); else None."""
    up_blocks = getattr(unet, "up_blocks", None)
    if not up_blocks or getattr(up_blocks[-1], "has_cross_attention", False) or \
            getattr(up_blocks[-1], "attentions", None) or getattr(up_blocks[-1], "upsamplers", None):
        return None
    last = f"up_blocks.{len(up_blocks) - 1}."
    names = []
    for name, _ in parameters:
        if name.startswith(last):
            names.append("up_block." + name.removeprefix(last))
        elif name.startswith("conv_out."):
            names.append(name)
        else:
            return None
    return names


class Featurizer:
    """Projected, timestep-averaged gradients of ||model output||^2.

    The K timesteps of one example go through the UNet as one batch, and only the chosen
    parameters require gradients while it runs, so the backward pass stops at the UNet's tail.
    When the chosen parameters are the tail's (a base model's index), many examples share one
    forward pass of the frozen trunk and their per-example, per-timestep gradients come from
    ``torch.func.vmap`` over the tail alone (``many``): the same numbers up to float rounding, several
    times faster, and every view of a split config for the price of one (each view averages the
    timesteps' gradients it needs). (Over the whole UNet vmap is slower on CPU: PyTorch has no batching
    rule for CPU flash attention; LoRA parameters live everywhere, so LoRA models keep the one-example
    path.)
    """

    def __init__(self, unet: torch.nn.Module, noise_scheduler, config: InfluenceConfig,
                 sample_shape: Sequence[int]):
        self.unet, self.scheduler, self.config = unet, noise_scheduler, config
        self.parameters = select_parameters(unet, config.parameters)
        self.dim_in = sum(p.numel() for _, p in self.parameters)
        self.sketch = CountSketch(self.dim_in, config.projection_dim, config.projection_seed)
        generator = torch.Generator().manual_seed(config.noise_seed)
        timesteps = config.feature_timesteps
        self.noise = torch.stack([torch.randn(tuple(sample_shape), generator=generator) for _ in timesteps])
        self.timesteps = torch.tensor(timesteps, dtype=torch.long)
        self.views = [[timesteps.index(t) for t in view_timesteps] for _, view_timesteps in config.views()]
        """Each view's positions among the feature pass's timesteps: its feature is the mean gradient there."""
        self.tail_names = _tail_names(unet, self.parameters)
        self.tail = _Tail(unet) if self.tail_names is not None else None
        self.preconditioner: KroneckerPreconditioner | None = None
        """The config's K-FAC or EK-FAC preconditioner once fitted (``fit_preconditioner``) or loaded."""

    @contextlib.contextmanager
    def _only_chosen_parameters_trainable(self) -> Iterator[list[torch.nn.Parameter]]:
        chosen = {id(p) for _, p in self.parameters}
        every = list(self.unet.parameters())
        wanted = [p.requires_grad for p in every]
        for p in every:
            p.requires_grad_(id(p) in chosen)
        try:
            with torch.enable_grad():
                yield [p for _, p in self.parameters]
        finally:
            for p, flag in zip(every, wanted, strict=True):
                p.requires_grad_(flag)

    def _view_loss(self, output: torch.Tensor, view: list[int]) -> torch.Tensor:
        """The mean over a view's timesteps of ||output||^2 (``output``: one example's, a row per timestep).
        The mean over timesteps of each timestep's gradient is the gradient of the mean."""
        count = len(self.timesteps)
        chosen = output if view == list(range(count)) else output[view]
        return chosen.float().pow(2).sum() / len(view)

    def __call__(self, sample: torch.Tensor, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        """(views, dim): one example's feature in each view of the config (``InfluenceConfig.views``).
        ``sample``: the example in the model's input space (pixels in [-1, 1] or VAE latents), (C, H, W);
        ``encoder_hidden_states``: its caption's text states, (L, D) or (1, L, D)."""
        if self.config.preconditioner != "none":
            return self.many(sample[None], encoder_hidden_states.reshape(1, *encoder_hidden_states.shape[-2:]))[0]
        with self._only_chosen_parameters_trainable() as params:
            device, dtype = params[0].device, params[0].dtype
            count = len(self.timesteps)
            t = self.timesteps.to(device)
            clean = sample.to(device, dtype)[None].expand(count, *sample.shape)
            noisy = self.scheduler.add_noise(clean, self.noise.to(device, dtype), t)
            states = encoder_hidden_states.to(device, dtype).reshape(1, *encoder_hidden_states.shape[-2:])
            output = self.unet(noisy, t, encoder_hidden_states=states.expand(count, -1, -1)).sample
            features = []
            for n, view in enumerate(self.views):  # one forward pass, one backward pass per view
                grads = torch.autograd.grad(self._view_loss(output, view), params,
                                            retain_graph=n < len(self.views) - 1)
                features.append(self.sketch(torch.cat([g.reshape(-1) for g in grads])))
        return torch.stack(features)


    def many(self, samples: torch.Tensor, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        """Features of B examples: ``samples`` (B, C, H, W), ``encoder_hidden_states`` (B, L, D) ->
        (B, views, dim)."""
        if self.tail is None:
            if self.config.preconditioner != "none":
                raise ValueError("K-FAC preconditioning needs the UNet's tail parameters (a base model without "
                                 "attention in its last up-block)")
            return torch.stack([self(sample, states) for sample, states in zip(samples, encoder_hidden_states,
                                                                               strict=True)])
        if self.config.preconditioner != "none" and self.preconditioner is None:
            raise ValueError(f"the config asks for a {self.config.preconditioner} preconditioner: fit it on the "
                             "training examples (fit_preconditioner) or load it with the index")
        count, examples = len(self.timesteps), len(samples)
        grads = self.per_row_grads(self.tail_inputs(samples, encoder_hidden_states))
        # (examples, timesteps, parameters): each view's feature is the mean of its timesteps' gradients
        if self.preconditioner is not None:
            flat = self.preconditioner(grads, self.tail_names)
        else:
            flat = torch.cat([grads[name].reshape(examples * count, -1) for name in self.tail_names], dim=1)
        flat = flat.reshape(examples, count, -1)
        views = [flat[:, view].mean(dim=1) for view in self.views]
        return torch.stack([torch.stack([self.sketch(row) for row in view]) for view in views], dim=1)

    def tail_inputs(self, samples: torch.Tensor, encoder_hidden_states: torch.Tensor) -> tuple:
        """What the tail takes for each (example, timestep) row -- hidden states, skip connections, time
        embedding -- from one no-grad pass of the frozen trunk on the examples noised at the feature pass's
        timesteps and noise (rows: example-major)."""
        device, dtype = self.parameters[0][1].device, self.parameters[0][1].dtype
        count, examples = len(self.timesteps), len(samples)
        t = self.timesteps.to(device).repeat(examples)
        clean = samples.to(device, dtype).repeat_interleave(count, dim=0)
        noisy = self.scheduler.add_noise(clean, self.noise.to(device, dtype).repeat(examples, 1, 1, 1), t)
        states = encoder_hidden_states.to(device, dtype).repeat_interleave(count, dim=0)
        captured: dict = {}

        def capture(_module, _args, kwargs):
            captured.update(kwargs)
            raise _TailReached

        hook = self.unet.up_blocks[-1].register_forward_pre_hook(capture, with_kwargs=True)
        try:
            with torch.no_grad():
                self.unet(noisy, t, encoder_hidden_states=states)
        except _TailReached:
            pass
        finally:
            hook.remove()
        return captured["hidden_states"], tuple(captured["res_hidden_states_tuple"]), captured["temb"]

    def per_row_grads(self, inputs: tuple, directions: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Each row's gradient, by ``tail_names``, of ||tail output||^2 (the features' function) or, given
        ``directions`` (one per row, the output's shape), of <tail output, direction> (``fit_preconditioner``):
        ``torch.func.vmap`` over the tail, one row at a time."""
        params = {name: p.detach() for name, p in zip(self.tail_names, (p for _, p in self.parameters), strict=True)}

        def per_row(hidden, residuals, temb, direction):  # one example at one timestep: the tail on a batch of one
            def loss(chosen):
                output = functional_call(self.tail, chosen, (hidden[None], tuple(r[None] for r in residuals),
                                                             temb[None]), strict=False).float()
                return output.pow(2).sum() if direction is None else (output[0] * direction).sum()
            return grad(loss)(params)

        hidden, residuals, temb = inputs
        if directions is None:
            grads = vmap(lambda h, r, e: per_row(h, r, e, None))(hidden, residuals, temb)
        else:
            grads = vmap(per_row)(hidden, residuals, temb, directions)
        return {name: value.detach() for name, value in grads.items()}  # no graph through the unchosen norm

    def fit_preconditioner(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> KroneckerPreconditioner:
        """Fit the config's K-FAC or EK-FAC preconditioner (``training.influence_preconditioner``) on training
        examples -- ``batches`` of (samples, encoder_hidden_states), read twice -- and use it from now on."""
        if self.tail is None:
            raise ValueError("K-FAC preconditioning needs the UNet's tail parameters (a base model without "
                             "attention in its last up-block)")
        batches = list(batches)
        params = dict(zip(self.tail_names, (p for _, p in self.parameters), strict=True))

        def tail_batches():
            for samples, states in batches:
                yield self.tail_inputs(samples, states), len(samples) * len(self.timesteps)

        self.preconditioner = fit_preconditioner(
            tail=self.tail, names=self.tail_names, parameters=params, batches=tail_batches,
            per_row_grads=self.per_row_grads, kind=self.config.preconditioner,
            damping=self.config.preconditioner_damping, seed=self.config.noise_seed + FIT_SEED_OFFSET)
        return self.preconditioner

    @torch.no_grad()
    def residuals(self, samples: torch.Tensor, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        """(B, views): how far the model's prediction misses each example's training target, as the root mean
        square over its values of (target - prediction) at the feature pass's timesteps and fixed noise,
        averaged over each view's timesteps. The DAS normalisation (``provenance.influence``) weighs a training
        image's influence by it: an image the model already reproduces exactly pulls its weights no further."""
        device, dtype = self.parameters[0][1].device, self.parameters[0][1].dtype
        count, examples = len(self.timesteps), len(samples)
        t = self.timesteps.to(device).repeat(examples)
        clean = samples.to(device, dtype).repeat_interleave(count, dim=0)
        noise = self.noise.to(device, dtype).repeat(examples, 1, 1, 1)
        noisy = self.scheduler.add_noise(clean, noise, t)
        states = encoder_hidden_states.to(device, dtype).repeat_interleave(count, dim=0)
        prediction = self.unet(noisy, t, encoder_hidden_states=states).sample[:, :clean.shape[1]]
        missed = (regression_target(self.scheduler, clean, noise, t) - prediction).float()
        per_timestep = missed.pow(2).flatten(1).mean(dim=1).sqrt().reshape(examples, count).cpu()
        return torch.stack([per_timestep[:, view].mean(dim=1) for view in self.views], dim=1)


class ExampleEncoder:
    """An image and its caption in the UNet's input space, exactly as the pipeline sees them.

    Pixels are resized and centre-cropped to the model's native size and scaled to [-1, 1]; a
    latent model's VAE encodes them to the latent *mean* (no sampling: features must not depend
    on chance). Captions go through the pipeline's own ``encode_prompt``, so training captions
    and generation prompts land in the same text space.
    """

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.vae = getattr(pipeline, "vae", None)
        sample_size = pipeline.unet.config.sample_size
        self.latent_size = int(sample_size[0] if isinstance(sample_size, (list, tuple)) else sample_size)
        scale = 1 if self.vae is None else 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.resolution = self.latent_size * scale
        self.sample_shape = (pipeline.unet.config.in_channels, self.latent_size, self.latent_size)

    def pixels(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB")
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
        if image.size != (self.resolution, self.resolution):
            image = image.resize((self.resolution, self.resolution), Image.Resampling.BICUBIC)
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)

    @torch.no_grad()
    def sample(self, image: Image.Image) -> torch.Tensor:
        pixels = self.pixels(image)
        if self.vae is None:
            return pixels
        vae = self.vae
        latents = vae.encode(pixels[None].to(vae.device, vae.dtype)).latent_dist.mean
        shift = getattr(vae.config, "shift_factor", None)
        if shift is not None:
            latents = latents - shift
        return (latents * vae.config.scaling_factor)[0].float().cpu()

    @torch.no_grad()
    def embed(self, caption: str) -> torch.Tensor:
        device = self.pipeline.unet.device
        states = self.pipeline.encode_prompt(prompt=caption, device=device, num_images_per_prompt=1,
                                             do_classifier_free_guidance=False, **pipeline_call_kwargs(self.pipeline))[0]
        return states[0].float().cpu()


CALIBRATION_STEPS = 30
"""Denoising steps of a calibration output: the API's default."""


def calibration_prompts(captions: Iterable[str], config: InfluenceConfig) -> list[tuple[str, int]]:
    """(prompt, seed) of each calibration output: distinct training captions drawn with the config's seed
    (cycled, with new seeds, when there are fewer captions than outputs)."""
    distinct = sorted({caption.strip() for caption in captions if caption.strip()})
    if not distinct or not config.uses_calibration_outputs:
        return []
    chosen = random.Random(config.calibration_seed).sample(distinct, min(len(distinct), config.calibration_outputs))
    return [(chosen[n % len(chosen)], config.calibration_seed * 1000 + n) for n in range(config.calibration_outputs)]


class Attributor:
    """Features of training examples and of outputs, for one loaded pipeline and one config."""

    def __init__(self, pipeline, config: InfluenceConfig, *, scheduler_config=None,
                 preconditioner: KroneckerPreconditioner | None = None):
        pipeline = drawing_pipeline(pipeline)  # a cascade's outputs are scored by the stage that drew them
        self.pipeline = pipeline
        self.config = config
        self.encoder = ExampleEncoder(pipeline)
        noise_scheduler = DDPMScheduler.from_config(scheduler_config or pipeline.scheduler.config)
        self.featurizer = Featurizer(pipeline.unet, noise_scheduler, config, self.encoder.sample_shape)
        self.featurizer.preconditioner = preconditioner  # one fitted for this model and feature pass, if given
        self._preconditioner_arrays: dict | None = None  # the index whose preconditioner ``score`` last took

    def features(self, image: Image.Image, caption: str) -> np.ndarray:
        """One example's features as an index takes them: (dim,) for a one-view config, (2, dim) -- evidence,
        payment -- for a split one (``InfluenceIndex.build``, ``InfluenceIndex.score_output``).

        A split config on a model's tail takes the per-timestep path (``Featurizer.many``): both views for the
        price of one. A one-view config keeps the one-pass path its recorded generations were scored by, so
        their audits recompute the same floats."""
        sample, states = self.encoder.sample(image), self.encoder.embed(caption)
        if (self.config.split or self.config.preconditioner != "none") and self.featurizer.tail is not None:
            return self._as_indexed(self.featurizer.many(sample[None], states[None])[0])
        return self._as_indexed(self.featurizer(sample, states))

    def fit_preconditioner(self, chosen: Sequence[tuple[Image.Image, str]],
                           batch: int = 16) -> KroneckerPreconditioner:
        """Fit the config's K-FAC or EK-FAC preconditioner on training examples (``preconditioner_sample`` says
        which); every feature from then on is preconditioned (``Featurizer.fit_preconditioner``)."""
        if not chosen:
            raise ValueError("a preconditioner is fitted on at least one training example")
        return self.featurizer.fit_preconditioner(
            (torch.stack([self.encoder.sample(image) for image, _ in chosen[start:start + batch]]),
             torch.stack([self.encoder.embed(caption) for _, caption in chosen[start:start + batch]]))
            for start in range(0, len(chosen), batch))

    def pixel_codes(self, image: Image.Image) -> np.ndarray | None:
        """A training image's ``pixel_codes`` as an index keeps them, when the config's evidence view blends pixel
        similarity (version 4); None otherwise."""
        return pixel_codes(image, self.config.pixel_size) if self.config.blends_pixels else None

    def score(self, index: InfluenceIndex, image: Image.Image, caption: str) -> OutputScores:
        """An output scored against an index for evidence and payment: its gradient features (through the
        preconditioner the index's rows were taken through, if any), and its ``pixel_row`` when the index blends
        pixels."""
        self._use_preconditioner_of(index)
        return index.score_output(self.features(image, caption), pixels=pixel_row(image, self.config.pixel_size)
                                  if self.config.blends_pixels else None)

    def _use_preconditioner_of(self, index: InfluenceIndex) -> None:
        if self.config.preconditioner == "none":
            return
        if index.preconditioner is None:
            raise ValueError(f"the config is {self.config.preconditioner}-preconditioned but the index keeps no "
                             "preconditioner: rebuild it")
        if self._preconditioner_arrays is not index.preconditioner:
            self.featurizer.preconditioner = from_block_arrays(index.preconditioner, kind=self.config.preconditioner,
                                                               damping=self.config.preconditioner_damping)
            self._preconditioner_arrays = index.preconditioner

    def _as_indexed(self, views: torch.Tensor) -> np.ndarray:
        """(..., views, dim) -> what an index of this config stores: the views of a split config, else the one."""
        return views.numpy() if self.config.split else views[..., 0, :].numpy()

    def calibration_features(self, captions: Iterable[str], *, guidance_scale: float,
                             steps: int = CALIBRATION_STEPS) -> np.ndarray | None:
        """Features of the model's own outputs for ``calibration_prompts`` (a calibrated index standardises
        each training image's scores on them, a centred one takes their mean from every feature), as
        ``features`` shapes them; None when no view's normalisation uses them."""
        if not self.config.uses_calibration_outputs:
            return None
        prompts = calibration_prompts(captions, self.config)
        if not prompts:
            raise ValueError("calibration needs at least one training caption")
        side = self.encoder.resolution
        rows = []
        for prompt, seed in prompts:
            with torch.inference_mode():
                image = self.pipeline(prompt, generator=torch.Generator("cpu").manual_seed(seed), height=side,
                                      width=side, num_inference_steps=steps, guidance_scale=guidance_scale,
                                      output_type="pil", **pipeline_call_kwargs(self.pipeline)).images[0]
            rows.append(self.features(image.convert("RGB"), prompt))
        return np.stack(rows)

    def features_of_many(self, examples: Iterable[tuple[Image.Image, str]],
                         progress: Callable[[int], None] | None = None, batch: int = 16) -> np.ndarray:
        """Training examples' features as an index takes them (``features``), ``batch`` at a time."""
        return self.index_rows_of_many(examples, progress=progress, batch=batch, residuals=False)[0]

    def index_rows_of_many(self, examples: Iterable[tuple[Image.Image, str]],
                           progress: Callable[[int], None] | None = None, batch: int = 16,
                           residuals: bool | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """What an index is built from, reading each training example once: its features, and its denoising
        residuals (``Featurizer.residuals``) as the index takes them -- (N,) for a one-view config, (N, 2) for a
        split one -- when ``residuals`` asks (default: when a view of the config is ``das``); else None."""
        with_residuals = self.config.uses_residuals if residuals is None else residuals
        rows: list[np.ndarray] = []
        misses: list[np.ndarray] = []
        pending: list[tuple[Image.Image, str]] = []

        def flush() -> None:
            samples = torch.stack([self.encoder.sample(image) for image, _ in pending])
            states = torch.stack([self.encoder.embed(caption) for _, caption in pending])
            rows.extend(self._as_indexed(self.featurizer.many(samples, states)))
            if with_residuals:
                misses.extend(self._as_indexed(self.featurizer.residuals(samples, states)[..., None])[..., 0])
            pending.clear()
            if progress is not None:
                progress(len(rows))

        for example in examples:
            pending.append(example)
            if len(pending) == batch:
                flush()
        if pending:
            flush()
        dim = self.config.projection_dim
        features = np.stack(rows) if rows else np.zeros((0, 2, dim) if self.config.split else (0, dim), np.float32)
        if not with_residuals:
            return features, None
        return features, (np.stack(misses) if misses else np.zeros((0, 2) if self.config.split else (0,), np.float32))
