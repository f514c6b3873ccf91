"""Load the motion stage's components: a local CogVideoX-I2V folder (real weights) or tiny random ones."""
from __future__ import annotations

import logging
import os

import torch
from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXDPMScheduler, CogVideoXTransformer3DModel

from data_tools.errors import DataError
from data_tools.runtime.random_init import random_init
from motion_gen.config import GenerateConfig, ModelConfig, TinyModelConfig
from motion_gen.model import CogVideoXConditionTransformer

logger = logging.getLogger(__name__)
SCHEDULERS = {"dpm": CogVideoXDPMScheduler, "ddim": CogVideoXDDIMScheduler}
# The CogVideoX-5b(-I2V) scheduler settings, used for the tiny model too.
COGVIDEOX_SCHEDULER = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                           prediction_type="v_prediction", rescale_betas_zero_snr=True, set_alpha_to_one=True,
                           snr_shift_scale=1.0, timestep_spacing="trailing", num_train_timesteps=1000)


def _require_dir(path: str, what: str) -> str:
    if not os.path.isdir(path):
        raise DataError(path, f"{what} folder does not exist")
    return path


def build_scheduler(name: str, pretrained: str | None = None):
    """A CogVideoX DPM or DDIM scheduler (config from ``pretrained/scheduler`` when given)."""
    if name not in SCHEDULERS:
        raise DataError(None, f"unknown scheduler {name!r}; choose from {sorted(SCHEDULERS)}")
    if pretrained:
        config = SCHEDULERS[name].load_config(_require_dir(os.path.join(pretrained, "scheduler"), "scheduler"))
        return SCHEDULERS[name].from_config(config)
    return SCHEDULERS[name](**COGVIDEOX_SCHEDULER)


def tiny_text_components(tiny: TinyModelConfig):
    """A byte-level tokenizer (no vocab file) and a tiny random T5 encoder."""
    from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

    tokenizer = ByT5Tokenizer()
    torch.manual_seed(tiny.seed)
    kwargs = dict(vocab_size=len(tokenizer), d_model=tiny.text_embed_dim, d_kv=8, d_ff=2 * tiny.text_embed_dim,
                  num_layers=tiny.text_layers, num_heads=4, decoder_start_token_id=0)
    return tokenizer, T5EncoderModel(T5Config(**{**kwargs, **tiny.t5})).eval()


def tiny_vae(tiny: TinyModelConfig) -> AutoencoderKLCogVideoX:
    """A tiny CogVideoX VAE with the real compression (8x spatial, 4x temporal)."""
    torch.manual_seed(tiny.seed + 1)
    kwargs = dict(block_out_channels=(tiny.vae_channels,) * 4, latent_channels=tiny.latent_channels, layers_per_block=1,
                  norm_num_groups=2, temporal_compression_ratio=4, down_block_types=("CogVideoXDownBlock3D",) * 4,
                  up_block_types=("CogVideoXUpBlock3D",) * 4)
    return AutoencoderKLCogVideoX(**{**kwargs, **tiny.vae}).eval()


def tiny_base_transformer(tiny: TinyModelConfig, num_frames: int, height: int, width: int) -> CogVideoXTransformer3DModel:
    """A tiny random I2V base transformer (input = noisy latent + image latent on channels)."""
    torch.manual_seed(tiny.seed + 2)
    return CogVideoXTransformer3DModel(
        num_attention_heads=tiny.num_attention_heads, attention_head_dim=tiny.attention_head_dim,
        in_channels=2 * tiny.latent_channels, out_channels=tiny.latent_channels, time_embed_dim=tiny.time_embed_dim,
        text_embed_dim=tiny.text_embed_dim, num_layers=tiny.num_layers, sample_width=width // 8,
        sample_height=height // 8, sample_frames=num_frames, max_text_seq_length=tiny.max_text_seq_length,
        use_rotary_positional_embeddings=True, use_learned_positional_embeddings=tiny.learned_positional_embeddings)


def load_transformer(model: ModelConfig, generate: GenerateConfig,
                     dtype: torch.dtype | None = None) -> CogVideoXConditionTransformer:
    """The condition transformer: a trained folder (``model.transformer``) or built from the base with a zero branch."""
    if model.transformer:
        transformer = CogVideoXConditionTransformer.from_pretrained(_require_dir(model.transformer, "transformer"),
                                                                    torch_dtype=dtype)
        if list(transformer.config.condition_names) != list(model.condition_names):
            raise DataError(model.transformer, f"transformer was trained on {transformer.config.condition_names}, "
                                               f"config asks for {model.condition_names}")
        return transformer
    if model.pretrained:
        base = _require_dir(os.path.join(_require_dir(model.pretrained, "pretrained CogVideoX"), "transformer"),
                            "pretrained CogVideoX transformer")
    else:
        with random_init(model.tiny.init_device, dtype):
            base = tiny_base_transformer(model.tiny, generate.num_frames, generate.height, generate.width)
        if dtype is not None:
            base = base.to(dtype)
    return CogVideoXConditionTransformer.from_base(base, model.condition_names, model.num_condition_blocks,
                                                   model.replace_condition_stream, torch_dtype=dtype)


def load_vae(model: ModelConfig, dtype: torch.dtype | None = None) -> AutoencoderKLCogVideoX:
    if model.pretrained:
        return AutoencoderKLCogVideoX.from_pretrained(_require_dir(os.path.join(model.pretrained, "vae"), "vae"),
                                                      torch_dtype=dtype).eval()
    with random_init(model.tiny.init_device, dtype):
        vae = tiny_vae(model.tiny)
    return vae.to(dtype) if dtype is not None else vae


def load_text_components(model: ModelConfig, dtype: torch.dtype | None = None):
    """``(tokenizer, text_encoder)``."""
    if model.pretrained:
        from transformers import AutoTokenizer, T5EncoderModel

        tokenizer = AutoTokenizer.from_pretrained(_require_dir(os.path.join(model.pretrained, "tokenizer"), "tokenizer"))
        encoder = T5EncoderModel.from_pretrained(os.path.join(model.pretrained, "text_encoder"), torch_dtype=dtype)
        return tokenizer, encoder.eval()
    with random_init(model.tiny.init_device, dtype):
        tokenizer, encoder = tiny_text_components(model.tiny)
    return tokenizer, encoder.to(dtype) if dtype is not None else encoder


def max_text_length(model: ModelConfig, transformer=None) -> int:
    """Prompt length in tokens (226 for CogVideoX)."""
    if transformer is not None:
        return int(transformer.config.max_text_seq_length)
    return 226 if model.pretrained else model.tiny.max_text_seq_length
