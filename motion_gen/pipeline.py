"""Image-to-video pipeline with condition videos: diffusers' ``CogVideoXImageToVideoPipeline`` plus the VAE
encoding of the condition videos (and their first frames), bound to the condition transformer during the
parent's denoising loop (CFG duplicates them for the unconditional half; DPM and DDIM schedulers both work)."""
from __future__ import annotations

import logging
import os
from typing import Mapping

import numpy as np
import torch
from diffusers import CogVideoXImageToVideoPipeline

from data_tools.maps.bundle import CONDITION_INTERPOLATION, to_model_range
from data_tools.errors import DataError
from data_tools.io.video_io import ResizeMode, read_video, resample_time, resize_frames
from motion_gen.latents import encode_condition
from motion_gen.model import CogVideoXConditionTransformer, repeat_to_batch

logger = logging.getLogger(__name__)


def condition_frames(value, name: str, num_frames: int, size: tuple[int, int],
                     resize_mode: ResizeMode = "crop") -> torch.Tensor:
    """One condition video as ``(B, T, 3, H, W)`` in [-1, 1]: a path (read through data_tools), uint8 frames
    ``(T, H, W, 3)`` (resampled), or a tensor ``(T, 3, H, W)`` / ``(B, T, 3, H, W)`` already in [-1, 1]."""
    if isinstance(value, (str, os.PathLike)):
        value = read_video(value, num_frames, size, resize_mode, CONDITION_INTERPOLATION[name])
    if isinstance(value, np.ndarray):
        if value.dtype != np.uint8 or value.ndim != 4 or value.shape[-1] != 3:
            raise DataError(None, f"condition '{name}': expected uint8 (T, H, W, 3), got {value.dtype} {value.shape}")
        if value.shape[0] != num_frames:
            value = resample_time(value, num_frames)
        if value.shape[1:3] != tuple(size):
            value = resize_frames(value, size, resize_mode, CONDITION_INTERPOLATION[name])
        value = to_model_range(value)
    if not isinstance(value, torch.Tensor):
        raise DataError(None, f"condition '{name}': unsupported input type {type(value).__name__}")
    if value.ndim == 4:
        value = value.unsqueeze(0)
    if value.ndim != 5 or value.shape[1:] != (num_frames, 3, *size):
        raise DataError(None, f"condition '{name}': tensor must be (B, {num_frames}, 3, {size[0]}, {size[1]}), "
                              f"got {tuple(value.shape)}")
    return value


class CogVideoXConditionPipeline(CogVideoXImageToVideoPipeline):
    """``CogVideoXImageToVideoPipeline`` whose transformer is a ``CogVideoXConditionTransformer``."""

    def __init__(self, tokenizer, text_encoder, vae, transformer, scheduler):
        if not isinstance(transformer, CogVideoXConditionTransformer):
            raise TypeError(f"transformer must be a CogVideoXConditionTransformer, got {type(transformer).__name__}")
        super().__init__(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                         scheduler=scheduler)

    @torch.no_grad()
    def encode_conditions(self, conditions: Mapping[str, object], num_frames: int, height: int, width: int,
                          generator: torch.Generator | None = None, resize_mode: ResizeMode = "crop",
                          device: torch.device | None = None,
                          fixed: Mapping[str, str] | None = None) -> dict[str, torch.Tensor]:
        """VAE-encode every condition the transformer needs into its model input ``(B, F, 2C, h, w)``.

        ``fixed`` names streams fed without a video, as the reference feeds its released model's unused streams:
        ``grey`` encodes an all-zero video in model range (mid-grey) like any condition; ``zero_latent`` gives
        an all-zero model input (see docs/motion.md)."""
        needed, fixed = list(self.transformer.config.condition_names), dict(fixed or {})
        missing = [n for n in needed if n not in conditions and n not in fixed]
        if missing:
            raise DataError(None, f"missing condition videos {missing}; the transformer needs {needed}")
        # not vae.device: with CPU offload the hook moves the VAE to the execution device only when it runs
        out, device = {}, device or self._execution_device
        for name in needed:
            if fixed.get(name) == "zero_latent":
                out[name] = self.zero_condition_latent(num_frames, height, width).to(device)
                continue
            if fixed.get(name) == "grey":
                frames = torch.zeros(1, num_frames, 3, height, width)
            elif name in fixed:
                raise DataError(None, f"fixed input for '{name}' must be grey or zero_latent, got {fixed[name]!r}")
            else:
                frames = condition_frames(conditions[name], name, num_frames, (height, width), resize_mode)
            out[name] = encode_condition(self.vae, frames, generator, device)
        return out

    def zero_condition_latent(self, num_frames: int, height: int, width: int) -> torch.Tensor:
        """An all-zero condition model input ``(1, F, 2C, h, w)`` for a ``num_frames`` x ``height`` x ``width`` video."""
        frames = (num_frames - 1) // self.vae_scale_factor_temporal + 1
        return torch.zeros(1, frames, 2 * self.vae.config.latent_channels, height // self.vae_scale_factor_spatial,
                           width // self.vae_scale_factor_spatial, dtype=self.vae.dtype)

    @staticmethod
    def condition_guidance(latents: dict[str, torch.Tensor], prompt, kwargs: dict) -> tuple[dict, dict]:
        """Classifier-free guidance on the conditions instead of the text: the unconditional half of the batch keeps
        the prompt and gets all-zero condition inputs (what ``train.condition_dropout`` trains), so
        ``guidance_scale`` w gives ``uncond + w * (cond - uncond)`` with uncond = "no conditions"."""
        kwargs = dict(kwargs)
        if not latents:  # a model without conditions: nothing to contrast, one unguided pass (never text CFG)
            kwargs["guidance_scale"] = 1.0
            return latents, kwargs
        if kwargs.get("guidance_scale", 6.0) <= 1:
            return latents, kwargs
        if kwargs.get("negative_prompt") or kwargs.get("negative_prompt_embeds") is not None:
            raise DataError(None, "guidance on the conditions uses the prompt for both halves: "
                                  "leave negative_prompt empty")
        if kwargs.get("num_videos_per_prompt", 1) != 1:
            raise DataError(None, "guidance on the conditions takes num_videos_per_prompt=1")
        if kwargs.get("prompt_embeds") is not None:
            kwargs["negative_prompt_embeds"] = kwargs["prompt_embeds"]
            batch = kwargs["prompt_embeds"].shape[0]
        else:
            kwargs["negative_prompt"] = prompt
            batch = len(prompt) if isinstance(prompt, list) else 1
        # diffusers orders the doubled batch [unconditional x batch, conditional x batch]: each half gets the
        # conditions expanded to the prompt batch first (the transformer would otherwise tile [0, c] as 0, c, 0, c)
        expanded = {}
        for name, v in latents.items():
            try:
                v = repeat_to_batch(v, batch, f"condition '{name}'")
            except ValueError as error:
                raise DataError(None, f"{error} (the prompt batch)") from None
            expanded[name] = torch.cat([torch.zeros_like(v), v])
        return expanded, kwargs

    @torch.no_grad()
    def __call__(self, image, prompt=None, conditions: Mapping[str, object] | None = None,
                 height: int | None = None, width: int | None = None, num_frames: int = 49,
                 generator: torch.Generator | None = None, resize_mode: ResizeMode = "crop", **kwargs):
        """As the parent's ``__call__`` plus ``conditions``: ``{name: path | uint8 frames | tensor}`` for each
        condition the transformer was built with (``fixed_conditions={name: "grey" | "zero_latent"}`` for streams
        fed without a video), or ``{name: latent}`` via ``condition_latents=``; ``guidance_on="conditions"``
        guides on the conditions instead of the text (``condition_guidance``)."""
        height = height or self.transformer.config.sample_height * self.vae_scale_factor_spatial
        width = width or self.transformer.config.sample_width * self.vae_scale_factor_spatial
        latents = kwargs.pop("condition_latents", None)
        fixed = kwargs.pop("fixed_conditions", None)
        guidance_on = kwargs.pop("guidance_on", "text")
        if guidance_on not in ("text", "conditions"):  # before the VAE encodes anything
            raise DataError(None, f"guidance_on must be text or conditions, got {guidance_on!r}")
        if latents is None:
            latents = self.encode_conditions(conditions or {}, num_frames, height, width, generator, resize_mode,
                                             fixed=fixed)
        if guidance_on == "conditions":
            latents, kwargs = self.condition_guidance(latents, prompt, kwargs)
        with self.transformer.bind_conditions(latents):
            return super().__call__(image=image, prompt=prompt, height=height, width=width, num_frames=num_frames,
                                    generator=generator, **kwargs)
