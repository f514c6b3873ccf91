"""Configuration of the motion stage: one YAML file describes model, generation, data and training."""
from __future__ import annotations

import dataclasses
from typing import Sequence

import torch

from data_tools.io.config import load_config
from data_tools.errors import DataError
from data_tools.runtime.training import LoopConfig, OptimizerConfig

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# generation options (motion_gen/options.py, docs/gpu_nodes.md "Generation options")
CACHE_METHODS = ("first_block", "pyramid_attention")
GROUP_OFFLOAD_TYPES = ("block_level", "leaf_level")
FP8_STORAGE = {"fp8_e4m3": "float8_e4m3fn", "fp8_e5m2": "float8_e5m2"}  # layerwise_casting value -> torch dtype


@dataclasses.dataclass
class TinyModelConfig:
    """Sizes of the randomly initialised tiny components (used when ``model.pretrained`` is null)."""

    seed: int = 0
    latent_channels: int = 4
    vae_channels: int = 8
    num_attention_heads: int = 2
    attention_head_dim: int = 16  # multiple of 16 for the 3D rotary embedding
    num_layers: int = 2
    time_embed_dim: int = 16
    text_embed_dim: int = 32
    text_layers: int = 1
    max_text_seq_length: int = 16
    learned_positional_embeddings: bool = False  # true as in CogVideoX-5b-I2V (then only the configured size runs)
    vae: dict = dataclasses.field(default_factory=dict)  # AutoencoderKLCogVideoX kwargs over the tiny ones
    t5: dict = dataclasses.field(default_factory=dict)   # T5Config kwargs over the tiny ones (real sizes: benchmarks)
    # null: built on the CPU in fp32 from the seed, then cast; a device ("auto": cuda when available, "meta"): built
    # there directly in the load dtype (random real-size configs: no fp32 CPU copy; other values than the CPU build)
    init_device: str | None = None


@dataclasses.dataclass
class ModelConfig:
    """Which weights to use and the shape of the condition branch."""

    pretrained: str | None = None  # local CogVideoX-5b-I2V diffusers folder (tokenizer/text_encoder/vae/transformer/scheduler)
    transformer: str | None = None  # trained condition transformer folder; null: built from the base (zero branch)
    condition_names: list[str] = dataclasses.field(default_factory=lambda: ["hand_keypoints", "depth", "seg_mask"])
    num_condition_blocks: int = 12
    replace_condition_stream: bool = True  # the reference quirk: block i's projection feeds copy block i+1
    dtype: str = "bf16"  # fp32 | bf16 | fp16 (weights at inference; training keeps the branch in fp32)
    tiny: TinyModelConfig = dataclasses.field(default_factory=TinyModelConfig)

    def torch_dtype(self) -> torch.dtype:
        if self.dtype not in DTYPES:
            raise DataError(None, f"model.dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        return DTYPES[self.dtype]


@dataclasses.dataclass
class CacheConfig:
    """``generate.cache``: a diffusers cache method for the motion transformer (``motion_gen.options.enable_cache``)."""

    method: str = "first_block"  # first_block | pyramid_attention
    # first_block: the rest of the blocks is reused while the first hooked block's residual changed by less than
    # this (relative mean absolute change; 0: only an unchanged residual reuses)
    threshold: float = 0.05
    # pyramid_attention: attention is recomputed every skip_range steps (timesteps 100-800, diffusers' default)
    skip_range: int = 2

    RANGES = {"threshold": (0, None), "skip_range": (1, None)}

    def __post_init__(self):
        if self.method not in CACHE_METHODS:
            raise DataError(None, f"'generate.cache.method' must be one of {list(CACHE_METHODS)}, got {self.method!r}")


def fp8_storage_dtype(name: str) -> torch.dtype:
    """The torch dtype of a ``generate.layerwise_casting`` value; DataError when unknown or when this torch cannot
    store float8 tensors on the CPU (where the weights are cast)."""
    if name not in FP8_STORAGE:
        raise DataError(None, f"'generate.layerwise_casting' must be one of {list(FP8_STORAGE)}, got {name!r}")
    dtype = getattr(torch, FP8_STORAGE[name], None)
    try:
        if not isinstance(dtype, torch.dtype):
            raise TypeError("no such dtype")
        torch.ones(2, dtype=dtype).float()
    except (TypeError, RuntimeError) as exc:
        raise DataError(None, f"'generate.layerwise_casting: {name}': torch {torch.__version__} cannot store "
                              f"{FP8_STORAGE[name]} weights on this machine ({exc})") from None
    return dtype


@dataclasses.dataclass
class GenerateConfig:
    """Inference settings."""

    num_frames: int = 49
    height: int = 480
    width: int = 720
    num_inference_steps: int = 50
    guidance_scale: float = 6.0
    use_dynamic_cfg: bool = False
    scheduler: str = "dpm"  # dpm | ddim
    negative_prompt: str = ""
    # what guidance_scale > 1 contrasts: "text" (the reference: negative prompt, conditions in both halves) or
    # "conditions" (same prompt, zero condition inputs in the unconditional half; needs train.condition_dropout)
    guidance_on: str = "text"
    fps: int = 15
    resize_mode: str = "crop"
    # interpolation when the model's size differs from the input's: the first frame's, and each condition's
    # ({name: area | linear | nearest | lanczos}; a condition not named keeps data_tools.maps.bundle's choice)
    image_interpolation: str = "area"
    condition_interpolation: dict[str, str] = dataclasses.field(default_factory=dict)
    vae_slicing: bool = True
    vae_tiling: bool = False
    cpu_offload: bool = False
    device: str | None = None  # default: cuda when available
    style: str = "engine"      # condition style (data_tools.maps.style); pam_release feeds normal as the reference does
    fixed_conditions: dict[str, str] | None = None  # {stream: grey | zero_latent}; None: the style's (docs/motion.md)
    # speed and memory (diffusers' own hooks, applied by build_pipeline to the transformer it loads; all off by
    # default; docs/gpu_nodes.md "Generation options")
    cache: CacheConfig | None = None  # e.g. {method: first_block, threshold: 0.05}
    group_offload: str | None = None  # block_level | leaf_level: every component's layers kept on the CPU
    layerwise_casting: str | None = None  # fp8_e4m3 | fp8_e5m2: transformer weights stored in float8
    compile: bool = False  # torch.compile of the transformer

    def __post_init__(self):
        from data_tools.errors import DataError
        from data_tools.io.video_io import INTERPOLATIONS, RESIZE_MODES

        for key, value in [("image_interpolation", self.image_interpolation),
                           *((f"condition_interpolation.{k}", v) for k, v in self.condition_interpolation.items())]:
            if value not in INTERPOLATIONS:
                raise DataError(None, f"'generate.{key}' must be one of {sorted(INTERPOLATIONS)}, got {value!r}")
        if self.resize_mode not in RESIZE_MODES:
            raise DataError(None, f"'generate.resize_mode' must be one of {RESIZE_MODES}, got {self.resize_mode!r}")
        if self.group_offload is not None and self.group_offload not in GROUP_OFFLOAD_TYPES:
            raise DataError(None, f"'generate.group_offload' must be one of {list(GROUP_OFFLOAD_TYPES)} or null, "
                                  f"got {self.group_offload!r}")
        if self.group_offload and self.cpu_offload:
            raise DataError(None, "'generate.group_offload' and 'generate.cpu_offload' exclude each other: pick one")
        if self.layerwise_casting is not None:
            fp8_storage_dtype(self.layerwise_casting)


@dataclasses.dataclass
class DataConfig:
    """Where training data comes from and where pre-computed latents go."""

    root: str | None = None  # processed dataset root (data_tools.datasets.hoi_dataset layout)
    split: str = "train"
    latents: str = "outputs/motion/latents"  # latent store written by prepare, read by train
    image_noise: bool = True  # noise the first frame in pixel space before encoding (log sigma ~ N(-3, 0.5))
    storage_dtype: str = "bf16"  # dtype of stored latents
    limit: int | None = None  # only the first N clips (smoke tests)


@dataclasses.dataclass
class TrainConfig:
    """Training of the condition branch (loop and optimiser come from data_tools.runtime.training)."""

    loop: LoopConfig = dataclasses.field(default_factory=LoopConfig)
    optim: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    noised_image_dropout: float = 0.05
    # per sample, every condition input is zeroed with this probability (the "no condition" input that
    # generate.guidance_on: conditions contrasts with; 0: off, as the reference trains)
    condition_dropout: float = 0.0
    # per sample of a model with several conditions, keep only a random non-empty proper subset of them (the
    # others zeroed) with this probability: each condition must then carry the sample on its own (0: off)
    condition_subset_dropout: float = 0.0
    train_base: bool = False
    gradient_checkpointing: bool = True
    validation_sample: str | None = None  # a condition video folder (ConditionBundle.from_video_folder) with a first frame
    validation_split: str | None = None  # without validation_sample: the first clip of this split of data.root
    validation_steps: int = 20


@dataclasses.dataclass
class MotionConfig:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    generate: GenerateConfig = dataclasses.field(default_factory=GenerateConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def __post_init__(self):
        cache = self.generate.cache
        # the block counts are known here for the tiny build only (a folder's are checked when it is built)
        if (cache is not None and cache.method == "first_block" and self.model.pretrained is None
                and self.model.transformer is None):
            from motion_gen.options import first_block_cache_blocks

            branch = self.model.num_condition_blocks if self.model.condition_names else 0
            first_block_cache_blocks(self.model.tiny.num_layers, branch)  # the pretrained count: at build time


def load_motion_config(path: str | None, overrides: Sequence[str] = ()) -> MotionConfig:
    """Load a motion YAML (e.g. ``configs/motion/tiny.yaml``) with ``key.sub=value`` overrides."""
    return load_config(MotionConfig, path, overrides)
