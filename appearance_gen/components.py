"""Building the FLUX components: random tiny ones (CPU tests) or real ones from a local diffusers folder."""
from __future__ import annotations

import dataclasses
import logging
import os

import torch

from appearance_gen.config import AppearanceConfig, ModelConfig, TinyModelConfig
from appearance_gen.model import AppearanceControlNets, hint_block_channels, vae_downscale
from data_tools.errors import DataError
from data_tools.runtime.random_init import random_init

logger = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclasses.dataclass
class FluxComponents:
    """The frozen parts of the appearance model."""

    transformer: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    text_encoder_2: torch.nn.Module
    tokenizer_2: object
    scheduler: object

    def frozen_modules(self) -> list[torch.nn.Module]:
        return [self.transformer, self.vae, self.text_encoder, self.text_encoder_2]

    def freeze(self) -> None:
        """``requires_grad_(False)`` and eval mode on every network."""
        for module in self.frozen_modules():
            module.requires_grad_(False).eval()

    def to(self, device, dtype: torch.dtype | None = None) -> "FluxComponents":
        for module in self.frozen_modules():
            same = dtype is None or next(module.parameters()).dtype == dtype
            module.to(device=device) if same else module.to(device=device, dtype=dtype)
        return self


def resolve_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise DataError(None, f"unknown dtype {name!r}; use one of {list(DTYPES)}")
    return DTYPES[name]


def byte_clip_tokenizer(max_length: int = 77):
    """A CLIPTokenizer over single bytes (no merges), built in memory: no download, 514 tokens."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {tok: i for i, tok in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def tiny_components(tiny: TinyModelConfig, scheduler_kwargs: dict, dtype: torch.dtype | None = None) -> FluxComponents:
    """Random tiny FLUX components initialised from ``tiny.seed`` (on ``tiny.init_device`` in ``dtype`` when set)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import ByT5Tokenizer, CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(tiny.seed)
    tokenizer, tokenizer_2 = byte_clip_tokenizer(tiny.clip_max_length), ByT5Tokenizer()
    clip_cfg = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                    pad_token_id=tokenizer.pad_token_id, max_position_embeddings=tiny.clip_max_length)
    clip_cfg.update(tiny.clip)
    t5_cfg = dict(vocab_size=len(tokenizer_2), decoder_start_token_id=0)
    t5_cfg.update(tiny.t5)
    with random_init(tiny.init_device, dtype):
        transformer = FluxTransformer2DModel(**tiny.transformer)
        vae = AutoencoderKL(**tiny.vae)
        text_encoder = CLIPTextModel(CLIPTextConfig(**clip_cfg))
        text_encoder_2 = T5EncoderModel(T5Config(**t5_cfg))
    scheduler = FlowMatchEulerDiscreteScheduler(**scheduler_kwargs)
    return FluxComponents(transformer, vae, text_encoder, tokenizer, text_encoder_2, tokenizer_2, scheduler)


def pretrained_components(base_path: str, dtype: torch.dtype, scheduler_kwargs: dict) -> FluxComponents:
    """FLUX components from a local diffusers folder (e.g. FLUX.1-dev)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import AutoTokenizer, CLIPTextModel, CLIPTokenizer, T5EncoderModel

    if not base_path or not os.path.isdir(base_path):
        raise DataError(base_path, "model.base_path must be a local diffusers FLUX folder")
    for sub in ("transformer", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"):
        if not os.path.isdir(os.path.join(base_path, sub)):
            raise DataError(os.path.join(base_path, sub), "missing component folder of the FLUX base model")
    transformer = FluxTransformer2DModel.from_pretrained(base_path, subfolder="transformer", torch_dtype=dtype)
    vae = AutoencoderKL.from_pretrained(base_path, subfolder="vae", torch_dtype=dtype)
    text_encoder = CLIPTextModel.from_pretrained(base_path, subfolder="text_encoder", torch_dtype=dtype)
    tokenizer = CLIPTokenizer.from_pretrained(base_path, subfolder="tokenizer")
    text_encoder_2 = T5EncoderModel.from_pretrained(base_path, subfolder="text_encoder_2", torch_dtype=dtype)
    tokenizer_2 = AutoTokenizer.from_pretrained(base_path, subfolder="tokenizer_2")
    if os.path.isdir(os.path.join(base_path, "scheduler")):
        scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(base_path, subfolder="scheduler")
    else:
        scheduler = FlowMatchEulerDiscreteScheduler(**scheduler_kwargs)
    return FluxComponents(transformer, vae, text_encoder, tokenizer, text_encoder_2, tokenizer_2, scheduler)


def build_components(model: ModelConfig) -> FluxComponents:
    """Frozen components for ``model.source`` ("tiny" or "pretrained"), on CPU, in ``model.dtype``."""
    dtype = resolve_dtype(model.dtype)
    if model.source == "tiny":
        comps = tiny_components(model.tiny, model.scheduler, dtype)
        if model.tiny.init_device is None:
            comps.to("cpu", dtype)
    elif model.source == "pretrained":
        comps = pretrained_components(model.base_path, dtype, model.scheduler)
    else:
        raise DataError(None, f"model.source must be 'tiny' or 'pretrained', got {model.source!r}")
    comps.freeze()
    return comps


def build_controlnets(cfg: AppearanceConfig, comps: FluxComponents) -> AppearanceControlNets:
    """Trained branches from ``model.controlnet_path``, else new ones from the base transformer (seeded) whose hint
    blocks downscale as much as the base's VAE (``controlnet.hint_block_out_channels: null`` derives them)."""
    path = cfg.model.controlnet_path
    if path:
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise DataError(path, "model.controlnet_path is not a saved AppearanceControlNets folder (no config.json)")
        nets = AppearanceControlNets.from_pretrained(path)
        if {k: list(v) for k, v in nets.branches.items()} != {k: list(v) for k, v in cfg.controlnet.branches.items()}:
            logger.warning("branches in %s (%s) differ from the config's; using the saved ones", path, nets.branches)
        return nets
    torch.manual_seed(cfg.model.tiny.seed + 1)
    c = cfg.controlnet
    downscale = vae_downscale(comps.vae.config)
    hint = list(c.hint_block_out_channels or hint_block_channels(downscale))
    if 2 ** (len(hint) - 1) != downscale:
        raise DataError(None, f"controlnet.hint_block_out_channels {hint} downscale {2 ** (len(hint) - 1)}x but the "
                              f"VAE downscales {downscale}x: give {len(hint_block_channels(downscale))} entries or null")
    init_device = cfg.model.tiny.init_device if cfg.model.source == "tiny" else None
    with random_init(init_device, resolve_dtype(cfg.model.dtype)):
        return AppearanceControlNets.from_transformer(
            comps.transformer, branches=c.branches, conditioning_scales=c.conditioning_scales, num_layers=c.num_layers,
            num_single_layers=c.num_single_layers, hint_block_out_channels=hint, blocks_repeat=c.blocks_repeat)
