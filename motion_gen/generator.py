"""``MotionGenerator``: the motion stage behind one call (first frame + condition bundle -> video)."""
from __future__ import annotations

import dataclasses
import logging
from typing import Sequence

import numpy as np
import torch

from data_tools.maps.bundle import CONDITION_INTERPOLATION, ConditionBundle
from data_tools.maps.style import FIXED_INPUTS, get_style
from data_tools.errors import DataError
from data_tools.io.video_io import resample_time, resize_frames
from motion_gen.components import build_scheduler, load_text_components, load_transformer, load_vae
from motion_gen.config import GenerateConfig, MotionConfig, load_motion_config
from motion_gen.options import OPTIONS_OFF, apply_options
from motion_gen.pipeline import CogVideoXConditionPipeline

logger = logging.getLogger(__name__)


def default_device(device: str | None = None) -> str:
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def build_pipeline(cfg: MotionConfig, device: str | None = None, transformer=None,
                   text_encoder: bool = True) -> CogVideoXConditionPipeline:
    """The condition pipeline of a motion config (tiny random components or local real weights).

    ``text_encoder=False`` leaves out tokenizer and T5: the caller passes prompt embeddings (``encode_prompts``).
    The speed and memory options of ``generate`` (``motion_gen.options``) apply to a transformer loaded here; a
    ``transformer`` passed in (training's validation) is used as is, on ``device``.
    """
    device = default_device(device or cfg.generate.device)
    # CPU: fp32, also for weights saved in half precision (the toy world's fp16 assets)
    dtype = cfg.model.torch_dtype() if device != "cpu" else torch.float32
    tokenizer, text_encoder = load_text_components(cfg.model, dtype) if text_encoder else (None, None)
    vae = load_vae(cfg.model, dtype)
    load = transformer is None
    if load:   # inference only: no parameter asks for gradients (one compiled graph for base and branch blocks)
        transformer = load_transformer(cfg.model, cfg.generate, dtype).requires_grad_(False)
    pipe = CogVideoXConditionPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                                      transformer=transformer, scheduler=build_scheduler(cfg.generate.scheduler,
                                                                                         cfg.model.pretrained))
    if cfg.generate.vae_slicing:
        pipe.vae.enable_slicing()
    if cfg.generate.vae_tiling:
        pipe.vae.enable_tiling()
    # placement (cpu_offload or to(device)) and the speed and memory options; a model passed in stays as it is
    apply_options(pipe, cfg.generate if load else dataclasses.replace(cfg.generate, **OPTIONS_OFF), device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def encode_prompts(cfg: MotionConfig, prompt: str, device: str, transformer) -> dict[str, torch.Tensor | None]:
    """``{"prompt_embeds", "negative_prompt_embeds"}`` (CPU tensors) of ``prompt`` and ``generate.negative_prompt``
    for ``MotionGenerator.generate``: T5 is loaded, run on ``device`` and freed again."""
    from diffusers.training_utils import free_memory

    dtype = cfg.model.torch_dtype() if device != "cpu" else None
    tokenizer, encoder = load_text_components(cfg.model, dtype)
    pipe = CogVideoXConditionPipeline(tokenizer=tokenizer, text_encoder=encoder.to(device), vae=None,
                                      transformer=transformer, scheduler=build_scheduler("dpm", cfg.model.pretrained))
    embeds, negative = pipe.encode_prompt(prompt or "", cfg.generate.negative_prompt or None,
                                          do_classifier_free_guidance=(cfg.generate.guidance_scale > 1
                                                                       and cfg.generate.guidance_on == "text"),
                                          max_sequence_length=transformer.config.max_text_seq_length, device=device)
    del pipe, encoder
    free_memory()
    return {"prompt_embeds": embeds.cpu(), "negative_prompt_embeds": None if negative is None else negative.cpu()}


def check_video_shape(num_frames: int, size: tuple[int, int], where: str | None = None, vae_downscale: int = 8,
                      patch_size: int = 2) -> None:
    """DataError unless ``num_frames`` is 4k+1 and both sides are multiples of ``vae_downscale * patch_size``
    (16 for CogVideoX: VAE 8x, patch 2)."""
    if num_frames < 1 or (num_frames - 1) % 4:
        raise DataError(where, f"frame count {num_frames} is not 4k+1 (the VAE compresses time 4x after frame 0)")
    m = vae_downscale * patch_size
    if size[0] % m or size[1] % m or min(size) <= 0:
        raise DataError(where, f"size {size[0]}x{size[1]} is not a multiple of {m} (VAE {vae_downscale}x times "
                               f"patch {patch_size})")


def fixed_conditions(gen: GenerateConfig, streams: Sequence[str]) -> dict[str, str]:
    """Streams of the transformer fed without a video: ``gen.fixed_conditions``, else the style's."""
    fixed = gen.fixed_conditions if gen.fixed_conditions is not None else dict(get_style(gen.style).motion_fixed)
    bad = {k: v for k, v in fixed.items() if v not in FIXED_INPUTS}
    if bad:
        raise DataError(None, f"generate.fixed_conditions values must be one of {FIXED_INPUTS}, got {bad}")
    return {name: kind for name, kind in fixed.items() if name in streams}


class MotionGenerator:
    """Generates a video from a first frame and a ``ConditionBundle``."""

    def __init__(self, cfg: MotionConfig, pipe: CogVideoXConditionPipeline):
        self.cfg, self.pipe = cfg, pipe
        streams = list(pipe.transformer.config.condition_names)
        self.fixed_conditions = fixed_conditions(cfg.generate, streams)
        self.condition_names = [n for n in streams if n not in self.fixed_conditions]   # the videos it needs
        self.num_frames, self.height, self.width = cfg.generate.num_frames, cfg.generate.height, cfg.generate.width
        tconfig = pipe.transformer.config
        # learned positional embeddings (CogVideoX-5b-I2V: 49 frames at 480x720) exist only for the size and frame
        # count the model was built with; other shapes would silently get sin/cos embeddings instead
        learned = tconfig.use_learned_positional_embeddings
        self.vae_downscale = pipe.vae_scale_factor_spatial  # diffusers derives it from the VAE config
        self.fixed_size = ((tconfig.sample_height * self.vae_downscale, tconfig.sample_width * self.vae_downscale)
                           if learned else None)
        self.fixed_frames = int(tconfig.sample_frames) if learned else None

    @classmethod
    def load(cls, config_path: str, overrides: Sequence[str] = (), device: str | None = None) -> "MotionGenerator":
        """Build from a motion YAML, e.g. ``configs/motion/tiny.yaml`` (random tiny components, CPU, seconds)."""
        cfg = load_motion_config(config_path, overrides)
        return cls(cfg, build_pipeline(cfg, device))

    def generate(self, first_frame: np.ndarray, bundle: ConditionBundle, seed: int = 0,
                 num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 prompt_embeds: dict[str, torch.Tensor | None] | None = None) -> np.ndarray:
        """(T, H, W, 3) uint8 with T = bundle.num_frames and (H, W) = bundle.size. ``prompt_embeds`` (from
        ``encode_prompts``) replace the bundle's prompt and the negative prompt (a pipeline without T5)."""
        num_frames, size = bundle.num_frames, tuple(bundle.size)
        check_video_shape(num_frames, size, bundle.name, self.vae_downscale, self.pipe.transformer.config.patch_size)
        missing = [n for n in self.condition_names if n not in bundle.conditions]
        if missing:
            raise DataError(bundle.name, f"bundle lacks conditions {missing} needed by the motion model")
        if first_frame.dtype != np.uint8 or first_frame.ndim != 3 or first_frame.shape[-1] != 3:
            raise DataError(bundle.name, f"first frame must be uint8 (H, W, 3), got {first_frame.dtype} {first_frame.shape}")
        gen = self.cfg.generate
        run_size = self.fixed_size or size
        run_frames = self.fixed_frames or num_frames
        if run_size != size:
            logger.info("model runs at %s only: resampling inputs from %s and the output back", run_size, size)
        conditions = {n: bundle.conditions[n] for n in self.condition_names}
        if run_frames != num_frames:
            logger.info("model runs at %d frames only (learned positional embeddings): resampling the conditions "
                        "in time from %d frames and the video back", run_frames, num_frames)
            conditions = {n: resample_time(v, run_frames) for n, v in conditions.items()}
        # the CogVideoX VAE decodes an even number of latent frames to 4 extra frames (5 -> 2 latents -> 8):
        # run 4 more frames (conditions hold their last frame) and drop them afterwards
        extra = 4 if ((run_frames - 1) // 4) % 2 else 0
        if extra:
            conditions = {n: np.concatenate([v, np.repeat(v[-1:], extra, 0)]) for n, v in conditions.items()}
        if run_size != size:
            conditions = {n: resize_frames(v, run_size, gen.resize_mode, gen.condition_interpolation.get(
                n, CONDITION_INTERPOLATION.get(n, "area"))) for n, v in conditions.items()}
        first = resize_frames(first_frame, run_size, gen.resize_mode, gen.image_interpolation)
        image = torch.from_numpy(first).permute(2, 0, 1).float().div(255.0).unsqueeze(0)
        device = self.pipe._execution_device
        generator = torch.Generator(device=device).manual_seed(seed)
        if prompt_embeds is None:
            text = {"prompt": bundle.prompt or "", "negative_prompt": gen.negative_prompt or None}
        else:
            text = {k: v.to(device) for k, v in prompt_embeds.items() if v is not None}
        try:
            frames = self.pipe(
                image=image, **text,
                conditions=conditions, height=run_size[0], width=run_size[1], num_frames=run_frames + extra,
                num_inference_steps=gen.num_inference_steps if num_inference_steps is None else num_inference_steps,
                guidance_scale=gen.guidance_scale if guidance_scale is None else guidance_scale,
                fixed_conditions=self.fixed_conditions, use_dynamic_cfg=gen.use_dynamic_cfg, generator=generator,
                guidance_on=gen.guidance_on,
                output_type="np",
                resize_mode=gen.resize_mode, max_sequence_length=self.pipe.transformer.config.max_text_seq_length,
            ).frames[0]
        finally:   # a call that failed mid-way (out of memory) must not leave its cached residuals to the next
            if getattr(self.pipe.transformer, "is_cache_enabled", False):
                self.pipe.transformer._reset_stateful_cache()
        video = np.clip(np.round(np.asarray(frames) * 255.0), 0, 255).astype(np.uint8)[:run_frames]
        if video.shape[0] != run_frames:
            raise RuntimeError(f"pipeline returned {video.shape[0]} frames, expected {run_frames}")
        if run_frames != num_frames:
            video = resample_time(video, num_frames)
        return resize_frames(video, size, "resize", "area") if run_size != size else video
