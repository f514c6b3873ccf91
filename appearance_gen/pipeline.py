"""FLUX sampling with the two ControlNet branches (a ``FluxControlNetPipeline`` with our controlnet module).

The prompt encoding, latent packing and timestep helpers are diffusers'; ``__call__`` is a short loop that feeds
per-branch pixel conditions to ``AppearanceControlNets`` and its residuals to the base transformer.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from diffusers.pipelines.flux.pipeline_flux_controlnet import (FluxControlNetPipeline, calculate_shift,
                                                               retrieve_timesteps)

from appearance_gen.model import AppearanceControlNets
from data_tools.maps.bundle import from_model_range
from data_tools.errors import DataError


def predict_velocity(transformer, controlnet: AppearanceControlNets, latents: torch.Tensor, sigma: torch.Tensor,
                     prompt_embeds: torch.Tensor, pooled_prompt_embeds: torch.Tensor, text_ids: torch.Tensor,
                     img_ids: torch.Tensor, branch_inputs: Mapping[str, torch.Tensor], guidance_scale: float,
                     conditioning_scales: Mapping[str, float] | None = None,
                     blocks_repeat: bool | None = None) -> torch.Tensor:
    """One FLUX forward with ControlNet residuals: packed latents at noise level ``sigma`` (B,) in [0, 1] ->
    predicted velocity (noise - data), packed like the latents. ``controlnet`` may be wrapped (DDP/DeepSpeed);
    then pass ``blocks_repeat`` (else read from its config)."""
    if blocks_repeat is None:
        blocks_repeat = controlnet.config.blocks_repeat
    guidance = None
    if transformer.config.guidance_embeds:
        guidance = torch.full((latents.shape[0],), guidance_scale, device=latents.device, dtype=torch.float32)
    residuals = controlnet(latents, branch_inputs, timestep=sigma, encoder_hidden_states=prompt_embeds,
                           pooled_projections=pooled_prompt_embeds, txt_ids=text_ids, img_ids=img_ids,
                           guidance=guidance, conditioning_scales=conditioning_scales)
    if residuals is not None:
        residuals = [r.to(latents.dtype) for r in residuals]
    return transformer(hidden_states=latents, timestep=sigma, guidance=guidance,
                       pooled_projections=pooled_prompt_embeds, encoder_hidden_states=prompt_embeds,
                       controlnet_block_samples=residuals, txt_ids=text_ids, img_ids=img_ids, return_dict=False,
                       controlnet_blocks_repeat=bool(blocks_repeat))[0]


def schedule_shift(height: int, width: int, scheduler_config, seq_len: str = "tokens") -> float:
    """FLUX's resolution shift ``mu`` for a ``height x width`` image: linear in a sequence length between
    (base_image_seq_len, base_shift) and (max_image_seq_len, max_shift). ``seq_len="tokens"``: the packed latent
    token count (FLUX, diffusers); ``"xflux"``: x-flux's ``(H/8)(W/8)/256`` as the reference's inference passes it
    (480x720: 21 instead of 1350 tokens, mu 0.460 instead of 0.685)."""
    if seq_len == "tokens":
        length = (height // 16) * (width // 16)
    elif seq_len == "xflux":
        length = (width // 8) * (height // 8) // (16 * 16)
    else:
        raise DataError(None, f"sampling.schedule_seq_len must be 'tokens' or 'xflux', got {seq_len!r}")
    return shift_for_length(length, scheduler_config)


def shift_for_length(seq_len: int, scheduler_config) -> float:
    """FLUX's ``mu`` for a sequence length, from the scheduler config's shift range (diffusers' defaults)."""
    get = scheduler_config.get
    return calculate_shift(seq_len, get("base_image_seq_len", 256), get("max_image_seq_len", 4096),
                           get("base_shift", 0.5), get("max_shift", 1.15))


class AppearancePipeline(FluxControlNetPipeline):
    """FLUX + ``AppearanceControlNets``; ``__call__`` returns uint8 images ``(B, H, W, 3)``."""

    def __init__(self, scheduler, vae, text_encoder, tokenizer, text_encoder_2, tokenizer_2, transformer,
                 controlnet: AppearanceControlNets, image_encoder=None, feature_extractor=None):
        super().__init__(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                         text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer,
                         controlnet=controlnet, image_encoder=image_encoder, feature_extractor=feature_extractor)
        self.set_progress_bar_config(disable=True)

    compute_dtype: torch.dtype | None = None  # None: the transformer's weight dtype

    def set_compute_dtype(self, compute_dtype: torch.dtype) -> None:
        """Compute in ``compute_dtype`` with the weights' stored values: each model but the VAE is cast up after
        loading (bf16 weights held in fp32 give exactly what an fp32 autocast over bf16 weights computes, at twice
        the memory); noise and latents are then made in ``compute_dtype``. The VAE keeps its own dtype."""
        for name in ("transformer", "controlnet", "text_encoder", "text_encoder_2"):
            getattr(self, name).to(dtype=compute_dtype)
        self.compute_dtype = compute_dtype

    @property
    def image_multiple(self) -> int:
        """Image sizes must be multiples of this (VAE downscale x 2x2 packing)."""
        return self.vae_scale_factor * 2

    def encode_latents(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` in [-1, 1] -> packed, scaled FLUX latents ``(B, tokens, 4C)``."""
        vae = self.vae
        dist = vae.encode(images.to(device=vae.device, dtype=vae.dtype)).latent_dist
        latents = dist.sample(generator)
        latents = (latents - vae.config.shift_factor) * vae.config.scaling_factor
        b, c, h, w = latents.shape
        return self._pack_latents(latents, b, c, h, w)

    def decode_latents(self, latents: torch.Tensor, height: int, width: int) -> np.ndarray:
        """Packed latents -> uint8 images ``(B, H, W, 3)``."""
        latents = self._unpack_latents(latents, height, width, self.vae_scale_factor)
        latents = latents / self.vae.config.scaling_factor + self.vae.config.shift_factor
        images = self.vae.decode(latents.to(self.vae.dtype), return_dict=False)[0]
        return from_model_range(images)

    def check_size(self, height: int, width: int) -> None:
        m = self.image_multiple
        if height % m or width % m:
            raise DataError(None, f"image size {height}x{width} must be a multiple of {m}")
        if self.controlnet.hint_downscale != self.vae_scale_factor:
            raise DataError(None, f"ControlNet hint downscale {self.controlnet.hint_downscale} != VAE downscale "
                                  f"{self.vae_scale_factor}: set controlnet.hint_block_out_channels to "
                                  f"{int(np.log2(self.vae_scale_factor)) + 1} entries")

    @torch.no_grad()
    def __call__(self, prompt: str | Sequence[str], branch_inputs: Mapping[str, torch.Tensor],
                 generator: Sequence[torch.Generator], num_inference_steps: int = 28, guidance_scale: float = 3.5,
                 conditioning_scales: Mapping[str, float] | None = None,
                 max_sequence_length: int = 512, schedule_seq_len: str = "tokens") -> np.ndarray:
        """Generate one image per generator; ``branch_inputs`` maps branch -> ``(B, 3k, H, W)`` in [-1, 1]
        (B = number of generators, or 1 to share the conditions); ``schedule_seq_len``: see ``schedule_shift``."""
        batch = len(generator)
        first = next(iter(branch_inputs.values()))
        height, width = first.shape[-2:]
        self.check_size(height, width)
        device = self._execution_device
        prompts = [prompt] * batch if isinstance(prompt, str) else list(prompt)
        if len(prompts) != batch:
            raise DataError(None, f"{len(prompts)} prompts for {batch} generators")
        prompt_embeds, pooled, text_ids = self.encode_prompt(prompt=prompts, prompt_2=None, device=device,
                                                             max_sequence_length=max_sequence_length)
        dtype = self.compute_dtype or self.transformer.dtype
        prompt_embeds, pooled = prompt_embeds.to(dtype), pooled.to(dtype)
        inputs = {k: v.to(device=device, dtype=dtype).expand(batch, -1, -1, -1) for k, v in branch_inputs.items()}
        latents, img_ids = self.prepare_latents(batch, self.transformer.config.in_channels // 4, height, width,
                                                dtype, device, list(generator))
        sigmas = np.linspace(1.0, 1 / num_inference_steps, num_inference_steps)
        mu = schedule_shift(height, width, self.scheduler.config, schedule_seq_len)
        timesteps, _ = retrieve_timesteps(self.scheduler, num_inference_steps, device, sigmas=sigmas, mu=mu)
        for t in self.progress_bar(timesteps):
            sigma = t.expand(batch).to(dtype) / 1000
            velocity = predict_velocity(self.transformer, self.controlnet, latents, sigma, prompt_embeds, pooled,
                                        text_ids, img_ids, inputs, guidance_scale, conditioning_scales)
            latents = self.scheduler.step(velocity, t, latents, return_dict=False)[0]
        images = self.decode_latents(latents, height, width)
        self.maybe_free_model_hooks()  # with CPU offload: every model back on the CPU
        return images
