"""``AppearanceGenerator``: first-frame candidates from a ConditionBundle's first-frame conditions.

The contract other stages (sim2real) code against::

    gen = AppearanceGenerator.load("configs/appearance/tiny.yaml")
    frames = gen.generate(bundle, seeds=[0, 1, 2])   # one (H, W, 3) uint8 per seed, at bundle.size
"""
from __future__ import annotations

import logging
from typing import Mapping, Sequence

import numpy as np
import torch

from appearance_gen.components import build_components, build_controlnets, resolve_dtype
from appearance_gen.config import AppearanceConfig, load_appearance_config
from appearance_gen.pipeline import AppearancePipeline
from data_tools.maps.bundle import CONDITION_INTERPOLATION, ConditionBundle, to_model_range
from data_tools.errors import DataError
from data_tools.io.video_io import resize_frames

logger = logging.getLogger(__name__)


def default_device(device: str | None = None) -> str:
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def branch_inputs_from_maps(branches: Mapping[str, Sequence[str]], maps: Mapping[str, np.ndarray],
                            size: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
    """Per-branch ControlNet inputs ``(..., 3k, H, W)`` in [-1, 1] from uint8 maps ``(..., H, W, 3)``.

    Maps are stretched to ``size`` when given (label maps with nearest interpolation).
    """
    out = {}
    for branch, names in branches.items():
        parts = []
        for name in names:
            if name not in maps:
                raise DataError(None, f"branch '{branch}' needs condition '{name}'; available: {list(maps)}")
            arr = maps[name]
            if size is not None:
                arr = resize_frames(arr, size, "resize", CONDITION_INTERPOLATION.get(name, "area"))
            parts.append(to_model_range(arr))
        out[branch] = torch.cat(parts, dim=-3)
    return out


class AppearanceGenerator:
    """FLUX + two ControlNets behind one call: bundle (first-frame conditions + prompt) -> K candidates."""

    def __init__(self, config: AppearanceConfig, pipeline: AppearancePipeline, device: str):
        self.config, self.pipeline, self.device = config, pipeline, device
        self.branches = {k: list(v) for k, v in pipeline.controlnet.branches.items()}
        self.condition_names = list(dict.fromkeys(n for names in self.branches.values() for n in names))

    @classmethod
    def load(cls, config_path: str, overrides: Sequence[str] = (), device: str | None = None) -> "AppearanceGenerator":
        """Build from a YAML config (``configs/appearance/tiny.yaml``: random tiny model; others: local weights)."""
        config = load_appearance_config(config_path, overrides)
        return cls.from_config(config, device)

    @classmethod
    def from_config(cls, config: AppearanceConfig, device: str | None = None,
                    controlnet=None) -> "AppearanceGenerator":
        """Build from a config object (``controlnet``: use this AppearanceControlNets instead of building one)."""
        device = default_device(device)
        comps = build_components(config.model)
        nets = controlnet if controlnet is not None else build_controlnets(config, comps)
        dtype = resolve_dtype(config.model.dtype)
        pipe = AppearancePipeline(comps.scheduler, comps.vae, comps.text_encoder, comps.tokenizer,
                                  comps.text_encoder_2, comps.tokenizer_2, comps.transformer, nets)
        if controlnet is None:
            nets.to(dtype=dtype)  # also when saved in another dtype (the toy world's fp16 assets)
            nets.requires_grad_(False).eval()
        if config.model.compute_dtype and resolve_dtype(config.model.compute_dtype) != dtype:
            pipe.set_compute_dtype(resolve_dtype(config.model.compute_dtype))
        if config.model.cpu_offload and device != "cpu":
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
        return cls(config, pipe, device)

    def generation_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The size the model runs at: the config's ``sampling.size``, else ``size`` rounded to the multiple."""
        if self.config.sampling.size:
            h, w = self.config.sampling.size
        else:
            m = self.pipeline.image_multiple
            h, w = (max(m, int(round(s / m)) * m) for s in size)
        self.pipeline.check_size(h, w)
        return h, w

    def generate(self, bundle: ConditionBundle, seeds: Sequence[int], num_inference_steps: int | None = None,
                 guidance_scale: float | None = None,
                 conditioning_scales: Mapping[str, float] | None = None) -> list[np.ndarray]:
        """One ``(H, W, 3)`` uint8 candidate per seed at ``bundle.size``, from the bundle's first-frame
        conditions and prompt (the same seed gives the same image whatever the other seeds are).
        Branch scales: the config's ``controlnet.conditioning_scales`` updated by ``conditioning_scales``."""
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise DataError(None, "generate needs at least one seed")
        missing = [n for n in self.condition_names if n not in bundle.conditions]
        if missing:
            raise DataError(None, f"bundle '{bundle.name}' lacks conditions {missing} needed by the appearance "
                                  f"branches {self.branches}")
        sampling = self.config.sampling
        size = self.generation_size(bundle.size)
        blank = set(self.config.controlnet.blank_maps)
        maps = {n: np.zeros((*bundle.size, 3), np.uint8) if n in blank else bundle.conditions[n][0]
                for n in self.condition_names}
        inputs = {k: v[None] for k, v in branch_inputs_from_maps(self.branches, maps, size).items()}
        scales = {**(self.config.controlnet.conditioning_scales or {}), **(conditioning_scales or {})}
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        images = self.pipeline(bundle.prompt, inputs, generators,
                               num_inference_steps=sampling.num_inference_steps if num_inference_steps is None else num_inference_steps,
                               guidance_scale=sampling.guidance_scale if guidance_scale is None else guidance_scale,
                               conditioning_scales=scales,
                               max_sequence_length=sampling.max_sequence_length,
                               schedule_seq_len=sampling.schedule_seq_len)
        return [resize_frames(img, bundle.size, "resize", "area") for img in images]
