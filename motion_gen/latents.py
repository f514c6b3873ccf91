"""VAE latents of videos, first frames and conditions, shared by the pipeline, prepare and training.

Latents are ``(B, F, C, h, w)`` (CogVideoX transformer layout) and already multiplied by the VAE scaling factor.
A condition's model input is its video latent concatenated on channels with the latent of its own first frame,
zero-padded in time (exactly how the I2V model receives the first frame), giving ``2C`` channels.
"""
from __future__ import annotations

import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution


def latent_scale(vae) -> float:
    """Multiplier applied to raw VAE latents (CogVideoX 1.0: ``scaling_factor``)."""
    factor = float(vae.config.scaling_factor)
    return 1.0 / factor if getattr(vae.config, "invert_scale_latents", False) else factor


@torch.no_grad()
def encode_distribution(vae, frames: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """Posterior parameters (mean and log-variance, ``(B, 2C, F, h, w)``) of frames ``(B, T, 3, H, W)`` in [-1, 1].
    ``device``: where the VAE runs (a pipeline's execution device; with CPU offload ``vae.device`` still reads
    ``cpu`` until the offload hook moves the VAE); default ``vae.device``."""
    video = frames.to(device=device or vae.device, dtype=vae.dtype).permute(0, 2, 1, 3, 4)
    return vae.encode(video).latent_dist.parameters


def sample_latents(parameters: torch.Tensor, scale: float, generator: torch.Generator | None = None,
                   sample: bool = True) -> torch.Tensor:
    """Scaled latents ``(B, F, C, h, w)`` drawn from stored posterior parameters (or their mean)."""
    dist = DiagonalGaussianDistribution(parameters)
    latents = dist.sample(generator) if sample else dist.mode()
    return (latents * scale).permute(0, 2, 1, 3, 4).contiguous()


def pad_first_frame(first: torch.Tensor, num_latent_frames: int) -> torch.Tensor:
    """``(B, 1, C, h, w)`` first-frame latent -> ``(B, F, C, h, w)`` with zeros after the first frame."""
    pad = first.new_zeros(first.shape[0], num_latent_frames - first.shape[1], *first.shape[2:])
    return torch.cat([first, pad], dim=1)


def condition_input(video_latents: torch.Tensor, first_latents: torch.Tensor) -> torch.Tensor:
    """Model input of one condition: ``cat([video latent, padded first-frame latent], channels)``."""
    return torch.cat([video_latents, pad_first_frame(first_latents, video_latents.shape[1])], dim=2)


@torch.no_grad()
def encode_condition(vae, frames: torch.Tensor, generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """Condition frames ``(B, T, 3, H, W)`` in [-1, 1] -> model input ``(B, F, 2C, h, w)`` (VAE run on ``device``)."""
    scale = latent_scale(vae)
    video = sample_latents(encode_distribution(vae, frames, device), scale, generator)
    first = sample_latents(encode_distribution(vae, frames[:, :1], device), scale, generator)
    return condition_input(video, first)
