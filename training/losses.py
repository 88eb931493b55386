"""The denoising objective, including the learned-variance term the ``base`` recipe needs.

The ``base`` recipe's UNet predicts 2×C channels for a DDPMScheduler with
``variance_type="learned_range"``: C channels of prediction (v, epsilon or x0) and C channels
interpolating the reverse-step log variance between the posterior variance and beta_t, which is
how diffusers' scheduler reads them at sampling time. The prediction half is trained with the
(optionally Min-SNR weighted) MSE; the variance half with the variational bound, holding the
predicted mean fixed (the "hybrid" loss of Nichol & Dhariwal 2021, as DeepFloyd IF uses).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.training_utils import compute_snr

LEARNED_VARIANCE_TYPES = ("learned", "learned_range")


def predicts_variance(scheduler: DDPMScheduler) -> bool:
    return getattr(scheduler.config, "variance_type", None) in LEARNED_VARIANCE_TYPES


def regression_target(
    scheduler: DDPMScheduler, clean: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    prediction_type = scheduler.config.prediction_type
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return scheduler.get_velocity(clean, noise, timesteps)
    if prediction_type == "sample":
        return clean
    raise ValueError(f"unsupported prediction_type {prediction_type!r}")


def min_snr_weights(scheduler: DDPMScheduler, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-sample loss weights min(SNR, gamma)/SNR, adapted to the prediction type."""
    snr = compute_snr(scheduler, timesteps)
    clipped = torch.minimum(snr, torch.full_like(snr, gamma))
    prediction_type = scheduler.config.prediction_type
    if prediction_type == "epsilon":
        return clipped / snr
    if prediction_type == "v_prediction":
        return clipped / (snr + 1)
    return clipped


def diffusion_loss(
    model_output: torch.Tensor,
    *,
    scheduler: DDPMScheduler,
    clean: torch.Tensor,
    noise: torch.Tensor,
    noisy: torch.Tensor,
    timesteps: torch.Tensor,
    snr_gamma: float | None = None,
    learned_variance_weight: float = 1.0,
    pixel_space: bool = False,
    sample_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scalar training loss for one batch; computed in float32 whatever the autocast dtype.

    ``sample_weights`` (B,): 0 takes an example out of the step without changing the others' share
    (the mean stays over the whole batch), as a paired counterfactual run needs."""
    model_output = model_output.float()
    clean, noise, noisy = clean.float(), noise.float(), noisy.float()
    channels = clean.shape[1]
    learns_variance = predicts_variance(scheduler) and model_output.shape[1] == 2 * channels
    if learns_variance:
        prediction, variance_values = model_output.split(channels, dim=1)
    else:
        prediction, variance_values = model_output, None

    target = regression_target(scheduler, clean, noise, timesteps)
    per_sample = F.mse_loss(prediction, target, reduction="none").mean(dim=tuple(range(1, prediction.ndim)))
    if snr_gamma is not None:
        per_sample = per_sample * min_snr_weights(scheduler, timesteps, snr_gamma)
    if sample_weights is not None:
        per_sample = per_sample * sample_weights
    loss = per_sample.mean()

    if variance_values is not None and learned_variance_weight > 0:
        bound = variational_bound_terms(
            scheduler,
            prediction=prediction.detach(),
            variance_values=variance_values,
            clean=clean,
            noisy=noisy,
            timesteps=timesteps,
            pixel_space=pixel_space,
        )
        if sample_weights is not None:
            bound = bound * sample_weights.reshape(-1, *([1] * (bound.ndim - 1)))
        # Nichol & Dhariwal rescale the bound by T/1000 so its size does not depend on T.
        loss = loss + learned_variance_weight * bound.mean() * (scheduler.config.num_train_timesteps / 1000.0)
    return loss


def _gather(values: torch.Tensor, timesteps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    out = values.to(device=timesteps.device)[timesteps].float()
    return out.reshape(-1, *([1] * (like.ndim - 1)))


def variational_bound_terms(
    scheduler: DDPMScheduler,
    *,
    prediction: torch.Tensor,
    variance_values: torch.Tensor,
    clean: torch.Tensor,
    noisy: torch.Tensor,
    timesteps: torch.Tensor,
    pixel_space: bool,
) -> torch.Tensor:
    """Per-sample bound terms in bits per dimension: KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)).

    At t = 0 pixel models use the discretised Gaussian likelihood of the 8-bit image instead.
    """
    alphas_cumprod = scheduler.alphas_cumprod.to(dtype=torch.float64)
    previous = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
    betas = 1.0 - alphas_cumprod / previous
    posterior_variance = (1.0 - previous) / (1.0 - alphas_cumprod) * betas
    # log(0) at t=0 is replaced by the t=1 value, as in improved DDPM.
    posterior_log_variance = torch.log(torch.cat([posterior_variance[1:2], posterior_variance[1:]]))
    coef_clean = previous.sqrt() * betas / (1.0 - alphas_cumprod)
    coef_noisy = (1.0 - betas).sqrt() * (1.0 - previous) / (1.0 - alphas_cumprod)

    alpha_bar = _gather(alphas_cumprod, timesteps, clean)
    c_clean = _gather(coef_clean, timesteps, clean)
    c_noisy = _gather(coef_noisy, timesteps, clean)
    min_log = _gather(posterior_log_variance, timesteps, clean)
    max_log = _gather(torch.log(betas), timesteps, clean)

    prediction_type = scheduler.config.prediction_type
    if prediction_type == "epsilon":
        predicted_clean = (noisy - (1 - alpha_bar).sqrt() * prediction) / alpha_bar.sqrt()
    elif prediction_type == "v_prediction":
        predicted_clean = alpha_bar.sqrt() * noisy - (1 - alpha_bar).sqrt() * prediction
    else:
        predicted_clean = prediction

    true_mean = c_clean * clean + c_noisy * noisy
    model_mean = c_clean * predicted_clean + c_noisy * noisy
    if scheduler.config.variance_type == "learned_range":
        fraction = (variance_values + 1) / 2
        model_log_variance = fraction * max_log + (1 - fraction) * min_log
    else:
        model_log_variance = variance_values

    kl = normal_kl(true_mean, min_log, model_mean, model_log_variance)
    kl = kl.mean(dim=tuple(range(1, kl.ndim))) / math.log(2.0)
    if not pixel_space:
        return kl
    nll = -discretized_gaussian_log_likelihood(clean, model_mean, 0.5 * model_log_variance)
    nll = nll.mean(dim=tuple(range(1, nll.ndim))) / math.log(2.0)
    return torch.where(timesteps == 0, nll, kl)


def normal_kl(mean1: torch.Tensor, log_var1: torch.Tensor, mean2: torch.Tensor, log_var2: torch.Tensor) -> torch.Tensor:
    return 0.5 * (
        -1.0 + log_var2 - log_var1 + torch.exp(log_var1 - log_var2) + (mean1 - mean2) ** 2 * torch.exp(-log_var2)
    )


def _standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


def discretized_gaussian_log_likelihood(x: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """Log-likelihood of 8-bit pixel values scaled to [-1, 1] under a discretised Gaussian."""
    centered = x - means
    inv_std = torch.exp(-log_scales)
    cdf_plus = _standard_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = _standard_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(
        x < -0.999,
        log_cdf_plus,
        torch.where(x > 0.999, log_one_minus_cdf_min, torch.log(cdf_delta.clamp(min=1e-12))),
    )


__all__ = [
    "diffusion_loss",
    "discretized_gaussian_log_likelihood",
    "min_snr_weights",
    "normal_kl",
    "predicts_variance",
    "regression_target",
    "variational_bound_terms",
]
