"""Run configuration of the appearance stage (YAML -> dataclasses via ``data_tools.io.config``)."""
from __future__ import annotations

import dataclasses
from typing import Sequence

from data_tools.io.config import load_config
from data_tools.runtime.training import LoopConfig, OptimizerConfig


@dataclasses.dataclass
class TinyModelConfig:
    """Random tiny components (CPU, seconds): keyword arguments of each diffusers/transformers config class."""

    seed: int = 0
    transformer: dict = dataclasses.field(default_factory=dict)   # FluxTransformer2DModel
    vae: dict = dataclasses.field(default_factory=dict)           # AutoencoderKL
    t5: dict = dataclasses.field(default_factory=dict)            # T5Config (ByT5 tokenizer, no files)
    clip: dict = dataclasses.field(default_factory=dict)          # CLIPTextConfig (byte-level vocab made in code)
    clip_max_length: int = 77
    # null: built on the CPU in fp32 from the seed, then cast; a device ("auto": cuda when available, "meta"): built
    # there directly in model.dtype (random real-size configs: no fp32 CPU copy; other values than the CPU build)
    init_device: str | None = None


@dataclasses.dataclass
class ModelConfig:
    """Where the components come from: ``tiny`` (random, from ``tiny``) or ``pretrained`` (local folders)."""

    source: str = "tiny"  # "tiny" | "pretrained"
    base_path: str | None = None        # diffusers FLUX folder: transformer/, vae/, text_encoder(_2)/, tokenizer(_2)/, scheduler/
    controlnet_path: str | None = None  # an AppearanceControlNets folder (training's final/); None: new branches
    dtype: str = "float32"              # weights of the frozen parts: float32 | bfloat16 | float16
    # arithmetic dtype when it differs from ``dtype``: the weights are loaded in ``dtype`` (their values rounded
    # to it) and cast up to this one, noise and latents are made in it; the VAE stays in ``dtype``. The reference
    # runs FLUX, T5, CLIP and both ControlNets under an fp32 autocast with bf16 weights and fp32 noise
    # (appearance_gen/double_infer_sim.py, src/flux/xflux_pipeline.py); this computes the same at 2x memory.
    compute_dtype: str | None = None
    cpu_offload: bool = False           # on CUDA: keep models on the CPU and move each to the GPU while it runs
    scheduler: dict = dataclasses.field(default_factory=lambda: {
        "shift": 3.0, "use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 1.15,
        "base_image_seq_len": 256, "max_image_seq_len": 4096})  # used when the base folder has none (tiny)
    tiny: TinyModelConfig = dataclasses.field(default_factory=TinyModelConfig)


@dataclasses.dataclass
class ControlNetConfig:
    """The two branches: which maps each reads, default scales, size of a new branch."""

    branches: dict = dataclasses.field(default_factory=lambda: {
        "physical": ["depth", "normal"], "semantic": ["hand_keypoints", "seg_mask"]})
    conditioning_scales: dict = dataclasses.field(default_factory=lambda: {"physical": 1.0, "semantic": 1.0})
    num_layers: int = 2
    num_single_layers: int = 0
    # hint-block widths, one stride-2 conv per entry after the first; null: 16 each, as many as the VAE downscales
    hint_block_out_channels: list[int] | None = None
    blocks_repeat: bool = True  # residual i % n into base double block i (x-flux); false: diffusers' intervals
    # maps fed as all -1 (black) instead of the bundle's: the released physical branch was trained without normals
    # (the reference's appearance training set excluded them), so pam_release blanks "normal"
    blank_maps: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class SamplingConfig:
    """Inference defaults."""

    size: list[int] | None = None  # [H, W] to generate at; None: the bundle's size rounded to multiples of 16
    num_inference_steps: int = 28
    guidance_scale: float = 3.5
    max_sequence_length: int = 512
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0, 1, 2, 3])
    schedule_seq_len: str = "tokens"  # FLUX shift from the latent token count; "xflux": the reference's (H/8)(W/8)/256


@dataclasses.dataclass
class DataConfig:
    """Training frames: one random frame per clip of a processed dataset split."""

    root: str | None = None
    split: str = "train"
    val_split: str | None = "val"
    size: list[int] = dataclasses.field(default_factory=lambda: [480, 720])
    frames_per_clip: int = 13  # frames read per clip (uniform); one of them is drawn per sample
    resize_mode: str = "crop"
    num_val_images: int = 4
    normal_source: str = "auto"  # "file" (the split's normal column), "depth" (estimated), "auto" (file if present)


@dataclasses.dataclass
class TrainConfig:
    """Loss options; the loop and optimizer come from the shared runtime."""

    timestep_sampling: str = "shift"  # "shift" (logit-normal + FLUX resolution shift) | "uniform" (reference)
    logit_mean: float = 0.0
    logit_std: float = 1.0
    guidance_scale: float = 4.0  # guidance fed to guidance-distilled FLUX.1-dev while training (reference: 4)
    gradient_checkpointing: bool = False
    val_steps: int = 28
    loop: LoopConfig = dataclasses.field(default_factory=LoopConfig)
    optim: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)


@dataclasses.dataclass
class AppearanceConfig:
    """A full appearance-stage run: model, branches, sampling, data and training."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    controlnet: ControlNetConfig = dataclasses.field(default_factory=ControlNetConfig)
    sampling: SamplingConfig = dataclasses.field(default_factory=SamplingConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)


def load_appearance_config(path: str | None, overrides: Sequence[str] = ()) -> AppearanceConfig:
    """Read a YAML config and apply ``key.sub=value`` overrides."""
    return load_config(AppearanceConfig, path, overrides)
