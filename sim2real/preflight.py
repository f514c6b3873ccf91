"""Preflight of a GPU node, before anyone burns GPU hours (``bash scripts/check_node.sh``).

Reports torch / CUDA / driver versions and whether they fit, the GPUs (count, memory, bf16), SDPA flash attention,
DeepSpeed ops, NCCL, the Python requirements, every model folder named by the given stage configs (with the files
its loaders need, tokenizers loaded for real), free disk for outputs, and an estimate of memory per GPU for each
config against the smallest GPU, and for a dataset recipe (``--dataset-config``) the estimated videos per GPU-hour
(``sim2real.throughput``: from published anchor figures, marked as an estimate). Lines are ``[ok]``, ``[warn]`` or ``[FAIL]``; the exit status is 1 when any
line is ``[FAIL]`` (a blocking problem). A machine without a GPU is reported ("no GPU": CPU runs only), not failed.

    python -m sim2real.preflight [--motion-config configs/motion/cogvideox5b_i2v.yaml]
                                 [--appearance-config configs/appearance/flux_dev.yaml] [--gpus N] [--mode train]
                                 [--dataset-config configs/dataset/pam_release.yaml]
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
from typing import Sequence

import torch

from data_tools.errors import DataError
from data_tools.io.cli import positive_int

GiB = 2**30
CUDA13_MIN_DRIVER = 580  # torch's CUDA 13 builds (2.11 and later on PyPI)
CUDA12_MIN_DRIVER = 525  # CUDA 12.x runtimes (2.10.0 is built on 12.8) through minor-version compatibility
# parameter counts used when a component's folder is absent (the released checkpoints' sizes)
NOMINAL_PARAMS = {"t5_xxl_encoder": 4.762e9, "clip_l_text": 1.23e8, "cogvideox_vae": 2.16e8, "flux_vae": 8.4e7}
# activations with gradient checkpointing, per sample (motion: 49x480x720; appearance: one 480x720 image), and for
# inference: allowances from a hand count, not measurements (scripts/gpu_checks.sh records the peak beside them)
ACTIVATION_ALLOWANCE_GIB = {"motion": 8.0, "appearance": 6.0}          # inference, per video / image
TRAIN_ACTIVATION_PER_SAMPLE_GIB = {"motion": 9.5, "appearance": 6.0}  # training, per sample of the micro-batch
REFERENCE_FRAMES = 49
FLUX_DEV = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
                axes_dims_rope=(16, 56, 56))


@dataclasses.dataclass
class Report:
    lines: list = dataclasses.field(default_factory=list)

    def add(self, level: str, text: str) -> None:
        self.lines.append((level, text))
        print(f"[{level}] {text}", flush=True)

    def ok(self, text: str) -> None:
        self.add("ok", text)

    def warn(self, text: str) -> None:
        self.add("warn", text)

    def fail(self, text: str) -> None:
        self.add("FAIL", text)

    @property
    def failed(self) -> bool:
        return any(level == "FAIL" for level, _ in self.lines)


# ---------------------------------------------------------------------------------------------- the node
def driver_version() -> str | None:
    """The NVIDIA driver version from nvidia-smi (None without one)."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out[0] if out else None


def driver_fits(torch_cuda: str | None, driver: str | None) -> tuple[bool, str]:
    """Does torch's CUDA build run on this driver? ``(fits, explanation)``."""
    if driver is None:
        return True, "no NVIDIA driver"
    if torch_cuda is None:
        return False, "torch is a CPU build on a machine with an NVIDIA driver: install a CUDA build"
    major = int(torch_cuda.split(".")[0])
    driver_major = int(driver.split(".")[0])
    needed = CUDA13_MIN_DRIVER if major >= 13 else CUDA12_MIN_DRIVER if major == 12 else 0
    if driver_major >= needed:
        return True, f"driver {driver} runs CUDA {torch_cuda} builds"
    hint = " (PAM_TORCH_VERSION=2.10.0 gives the CUDA 12.8 build, see the README)" if major >= 13 else ""
    return False, f"torch built on CUDA {torch_cuda} needs driver >= {needed}, this node has {driver}{hint}"


def check_versions(report: Report) -> None:
    from data_tools.runtime.environment import problems, requirements

    report.ok(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda or 'none'})")
    fits, why = driver_fits(torch.version.cuda, driver_version())
    (report.ok if fits else report.fail)(why)
    missing = problems(requirements())
    (report.fail if missing else report.ok)("Python requirements: " + ("; ".join(missing) if missing else "all met"))


def check_gpus(report: Report) -> list[int]:
    """One line per GPU; returns their total memory in bytes (empty without a usable GPU)."""
    if not torch.cuda.is_available():
        if driver_version() is None:
            report.ok("no GPU: this machine runs the CPU (tiny) configs only")
        else:
            report.fail("an NVIDIA driver is present but torch.cuda.is_available() is false (see the driver line)")
        return []
    memory = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        memory.append(p.total_memory)
        report.ok(f"GPU {i}: {p.name}, {p.total_memory / GiB:.1f} GiB, compute {p.major}.{p.minor}, "
                  f"bf16 {'yes' if p.major >= 8 else 'no'}")
    if not torch.cuda.is_bf16_supported():
        report.fail("bf16 is not supported on this GPU: the real configs run in bf16")
    return memory


def check_attention_and_comms(report: Report) -> None:
    if not torch.cuda.is_available():
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(1, 8, 256, 64, device="cuda", dtype=torch.bfloat16)
    try:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            torch.nn.functional.scaled_dot_product_attention(q, q, q)
        report.ok("SDPA flash attention runs")
    except RuntimeError as e:
        report.warn(f"SDPA flash attention unavailable (memory-efficient/math kernels are used): {str(e)[:120]}")
    if torch.distributed.is_nccl_available():
        version = torch.cuda.nccl.version()
        report.ok(f"NCCL {'.'.join(map(str, version)) if isinstance(version, tuple) else version}")
    else:
        report.fail("NCCL is not available in this torch build: multi-GPU training cannot start")


def check_build_tools(report: Report) -> None:
    """A C++ compiler and ninja: DeepSpeed builds its CPU Adam (ZeRO offload of the optimizer) as a C++ extension
    at first use, so a node without them fails there, after the models have loaded."""
    compiler = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++") or shutil.which("clang++")
    ninja = shutil.which("ninja") or importlib.util.find_spec("ninja") is not None
    missing = [name for name, found in (("a C++ compiler (c++, g++ or $CXX)", compiler), ("ninja", ninja))
               if not found]
    if missing:
        report.warn(f"no {' and no '.join(missing)}: DeepSpeed cannot build cpu_adam, so the ZeRO-2 optimizer "
                    "offload (--zero2-offload, offload_optimizer) fails; pip install ninja / install g++")
    else:
        report.ok(f"C++ compiler {compiler} and ninja found (DeepSpeed can build cpu_adam)")


def check_deepspeed(report: Report) -> None:
    if importlib.util.find_spec("deepspeed") is None:
        report.warn("DeepSpeed is not installed: the ZeRO-2 configs cannot run (scripts install the gpu extra)")
        return
    import deepspeed

    check_build_tools(report)
    line = f"DeepSpeed {deepspeed.__version__}"
    if not torch.cuda.is_available():
        report.ok(line + " (ops not checked without a GPU)")
        return
    from deepspeed.ops.op_builder import CPUAdamBuilder, FusedAdamBuilder

    cuda_home = os.environ.get("CUDA_HOME")
    nvcc = shutil.which("nvcc") or (cuda_home and shutil.which(os.path.join(cuda_home, "bin", "nvcc")))
    ops = {b.NAME: b.is_compatible(verbose=False) for b in (FusedAdamBuilder(), CPUAdamBuilder())}
    report.ok(f"{line}; ops compatible: {ops}; nvcc {'found' if nvcc else 'not found'}")
    if not nvcc:
        report.warn("no nvcc: DeepSpeed cannot JIT-build ops (cpu_adam for a CPU-offloaded optimizer); ZeRO-2 with "
                    "torch's AdamW needs none")


def check_disk(report: Report, path: str = "outputs", min_gib: float = 50.0) -> None:
    probe = path
    while not os.path.isdir(probe):
        probe = os.path.dirname(os.path.abspath(probe))
    free = shutil.disk_usage(probe).free / GiB
    if free < 1:
        report.fail(f"{free:.1f} GiB free for outputs under {probe}")
    else:
        (report.ok if free >= min_gib else report.warn)(f"{free:.0f} GiB free for outputs under {probe}")


# ---------------------------------------------------------------------------------------------- model folders
def safetensors_params(folder: str) -> int | None:
    """Parameter count of the ``*.safetensors`` files in ``folder`` from their headers (None without any)."""
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files:
        return None
    total = 0
    for path in files:
        try:
            with open(path, "rb") as f:
                header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        except (OSError, ValueError):
            return None  # unreadable header: the loader will say so; the estimate uses the nominal size
        for key, info in header.items():
            if key != "__metadata__":
                n = 1
                for d in info["shape"]:
                    n *= d
                total += n
    return total


def has_weights(folder: str) -> bool:
    """Whether a model folder holds weights: ``*.safetensors``, ``*.bin`` or a sharded ``*.index.json``."""
    return any(f.endswith((".safetensors", ".bin", ".index.json")) for f in os.listdir(folder))


def tokenizer_problem(folder: str) -> str | None:
    """What the files of a saved tokenizer folder lack (None when they look complete; nothing is loaded)."""
    files = set(os.listdir(folder))
    if "tokenizer_config.json" not in files:
        return "tokenizer_config.json missing"
    if "tokenizer.json" in files or {"vocab.json", "merges.txt"} <= files:
        return None
    if "spiece.model" in files:
        missing = [m for m in ("sentencepiece", "google.protobuf") if importlib.util.find_spec(m.split(".")[0]) is None]
        return (f"only spiece.model, which needs {' and '.join(missing)} (pip install sentencepiece protobuf)"
                if missing else None)
    return "no vocabulary (tokenizer.json, spiece.model or vocab.json + merges.txt)"


def check_tokenizer(folder: str) -> str | None:
    """None when the tokenizer folder loads; else what is wrong (its files first, then loading it for real: a T5
    folder with only ``spiece.model`` needs sentencepiece and protobuf, in versions that work together)."""
    if not os.path.isdir(folder):
        return f"{folder}: folder does not exist"
    problem = tokenizer_problem(folder)
    if problem:
        return f"{folder}: {problem}"
    try:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(folder)
    except Exception as e:  # noqa: BLE001 - any failure to load is the finding
        return f"{folder}: tokenizer does not load ({type(e).__name__}: {str(e)[:160]})"
    return None


def check_model_folder(report: Report, folder: str, what: str) -> bool:
    """A diffusers/transformers model folder: ``config.json`` and weights (safetensors, bin or a sharded index)."""
    if not os.path.isdir(folder):
        report.fail(f"{what}: {folder} does not exist")
        return False
    files = os.listdir(folder)
    if "config.json" not in files:
        report.fail(f"{what}: {folder} has no config.json")
        return False
    if not has_weights(folder):
        report.fail(f"{what}: {folder} has no weights (*.safetensors / *.bin)")
        return False
    report.ok(f"{what}: {folder}")
    return True


def check_pipeline_folder(report: Report, root: str, models: Sequence[str], tokenizers: Sequence[str], what: str):
    if not os.path.isdir(root):
        report.fail(f"{what}: {root} does not exist")
        return
    for sub in models:
        check_model_folder(report, os.path.join(root, sub), f"{what} {sub}")
    for sub in tokenizers:
        problem = check_tokenizer(os.path.join(root, sub))
        (report.fail(f"{what} {sub}: {problem}") if problem else report.ok(f"{what} {sub} loads"))
    if not os.path.isfile(os.path.join(root, "scheduler", "scheduler_config.json")):
        report.warn(f"{what}: {root}/scheduler/scheduler_config.json is missing (defaults are used)")


# ---------------------------------------------------------------------------------------------- memory estimate
def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def motion_params(cfg) -> dict:
    """Parameter counts of the motion stage: frozen base, trainable branch, text encoder, VAE (with
    ``train.train_base`` the base is trained too and counts as branch: in the optimizer and in checkpoints)."""
    from accelerate import init_empty_weights

    from motion_gen.bench import COGVIDEOX_5B_I2V
    from motion_gen.model import BRANCH_PREFIXES, CogVideoXConditionTransformer

    config = dict(COGVIDEOX_5B_I2V)
    root = cfg.model.pretrained
    if root and os.path.isfile(os.path.join(root, "transformer", "config.json")):
        with open(os.path.join(root, "transformer", "config.json")) as f:
            config = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    config.update(condition_names=list(cfg.model.condition_names), num_condition_blocks=cfg.model.num_condition_blocks)
    with init_empty_weights():
        model = CogVideoXConditionTransformer.from_config(config)
    branch = sum(p.numel() for n, p in model.named_parameters() if n.startswith(BRANCH_PREFIXES))
    folder = lambda sub: safetensors_params(os.path.join(root, sub)) if root else None  # noqa: E731
    base = 0 if cfg.train.train_base else _count(model) - branch
    return {"base": base, "branch": _count(model) - base,
            "text_encoder": folder("text_encoder") or NOMINAL_PARAMS["t5_xxl_encoder"],
            "vae": folder("vae") or NOMINAL_PARAMS["cogvideox_vae"]}


def appearance_params(cfg) -> dict:
    """Parameter counts of the appearance stage: frozen FLUX transformer, trainable branches, text encoders, VAE."""
    from accelerate import init_empty_weights
    from diffusers import FluxTransformer2DModel

    from appearance_gen.model import AppearanceControlNets

    root = cfg.model.base_path
    config = dict(FLUX_DEV)
    if root and os.path.isfile(os.path.join(root, "transformer", "config.json")):
        with open(os.path.join(root, "transformer", "config.json")) as f:
            config = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    c = cfg.controlnet
    with init_empty_weights():
        transformer = FluxTransformer2DModel.from_config(config)
        nets = AppearanceControlNets.from_transformer(
            transformer, branches=c.branches, conditioning_scales=c.conditioning_scales, num_layers=c.num_layers,
            num_single_layers=c.num_single_layers, hint_block_out_channels=c.hint_block_out_channels,
            blocks_repeat=c.blocks_repeat, load_weights_from_transformer=False)
    folder = lambda sub: safetensors_params(os.path.join(root, sub)) if root else None  # noqa: E731
    return {"base": _count(transformer), "branch": _count(nets),
            "text_encoder": (folder("text_encoder_2") or NOMINAL_PARAMS["t5_xxl_encoder"])
            + (folder("text_encoder") or NOMINAL_PARAMS["clip_l_text"]),
            "vae": folder("vae") or NOMINAL_PARAMS["flux_vae"]}


def memory_per_gpu_gib(params: dict, mode: str, world: int, zero2: bool, activations_gib: float,
                       cpu_offload: bool = False, text_encoder_in_training: bool = False,
                       weight_bytes: int = 2, optimizer_offload: bool = False) -> float:
    """Estimated peak GiB per GPU. Weights in bf16 (``weight_bytes`` 2; 4 for inference computing in fp32).
    Training adds, per trainable parameter, bf16 weights (2) and fp32 master weights + fp32 gradients + two Adam moments (16 bytes), the 16 sharded over the
    GPUs with ZeRO-2; with the optimizer offloaded to the CPU only bf16 weights and gradients stay (4 bytes).
    Inference with CPU offload holds one component at a time."""
    if mode == "infer":
        sizes = [params["base"] + params["branch"], params["text_encoder"], params["vae"]]
        weights = (max(sizes) if cpu_offload else sum(sizes)) * weight_bytes
        return weights / GiB + activations_gib
    frozen = params["base"] + params["vae"] + (params["text_encoder"] if text_encoder_in_training else 0)
    per_trainable = 4 if optimizer_offload else 2 + 16 / (world if zero2 else 1)
    return (frozen * 2 + params["branch"] * per_trainable) / GiB + activations_gib


def zero2_bucket_gib(path: str = "configs/accelerate/zero2.json") -> float:
    """GiB of DeepSpeed's ZeRO-2 communication buckets (reduce + all-gather, bf16 elements) from its json."""
    try:
        with open(path, encoding="utf-8") as f:
            zero = json.load(f).get("zero_optimization", {})
    except (OSError, ValueError):
        zero = {}
    elements = float(zero.get("reduce_bucket_size", 5e8)) + float(zero.get("allgather_bucket_size", 5e8))
    return elements * 2 / GiB


def training_extras_gib(stage: str, params: dict, batch: int, frames: int, zero2: bool, validation: bool) -> dict:
    """The parts of a training estimate beyond weights and optimizer state, per GPU: activations (per sample,
    scaled by the micro-batch and, for motion, the frame count), ZeRO-2 buckets, and rank 0's validation text
    encoder (bf16) when the run validates."""
    scale = batch * (frames / REFERENCE_FRAMES if stage == "motion" else 1.0)
    return {"activations": TRAIN_ACTIVATION_PER_SAMPLE_GIB[stage] * scale,
            "buckets": zero2_bucket_gib() if zero2 else 0.0,
            "validation_text_encoder": params["text_encoder"] * 2 / GiB if validation and stage == "motion" else 0.0}


@dataclasses.dataclass
class Estimate:
    """The memory estimate of one stage config: GiB per GPU, the parameter counts and the allowances it used."""

    gib: float
    params: dict
    extras: dict
    batch: int | None
    weight_bytes: int


def memory_estimate(stage: str, cfg, mode: str, world: int, zero2: bool, batch: int | None = None,
                    optimizer_offload: bool = False) -> Estimate:
    """Estimated peak GiB per GPU of ``stage`` ("motion" or "appearance") training or inference with ``cfg``."""
    params = motion_params(cfg) if stage == "motion" else appearance_params(cfg)
    offload = bool(getattr(getattr(cfg, "generate", None), "cpu_offload", False))
    if mode == "train":
        loop = cfg.train.loop
        batch = loop.batch_size if batch is None else batch
        frames = cfg.generate.num_frames if stage == "motion" else 1
        extras = training_extras_gib(stage, params, batch, frames, zero2, bool(loop.validate_every))
    else:
        extras = {"activations": ACTIVATION_ALLOWANCE_GIB[stage]}
    compute = getattr(getattr(cfg, "model", None), "compute_dtype", None)
    weight_bytes = 4 if mode == "infer" and compute in ("float32", "fp32") else 2   # weights cast up to fp32
    offload = offload or bool(getattr(getattr(cfg, "model", None), "cpu_offload", False))
    need = memory_per_gpu_gib(params, mode, world, zero2, sum(extras.values()), offload,
                              text_encoder_in_training=stage == "appearance", weight_bytes=weight_bytes,
                              optimizer_offload=optimizer_offload)
    return Estimate(need, params, extras, batch if mode == "train" else None, weight_bytes)


def check_memory(report: Report, stage: str, cfg, mode: str, gpu_memory: Sequence[int], world: int,
                 zero2: bool, batch: int | None = None) -> float:
    """One line comparing the estimate with the smallest GPU; returns the estimate (GiB per GPU)."""
    estimate = memory_estimate(stage, cfg, mode, world, zero2, batch)
    need, params, extras, batch, weight_bytes = (estimate.gib, estimate.params, estimate.extras, estimate.batch,
                                                 estimate.weight_bytes)
    counts = ", ".join(f"{k} {v / 1e9:.2f}B" for k, v in params.items())
    counts += ", fp32 compute" if weight_bytes == 4 else ""
    parts = ", ".join(f"{k} {v:.1f}" for k, v in extras.items() if v)
    text = (f"{stage} {mode} on {world} GPU(s){' with ZeRO-2' if zero2 and mode == 'train' else ''}"
            f"{f', batch {batch}' if mode == 'train' else ''}: ~{need:.0f} GiB per GPU (parameters {counts}; "
            f"unmeasured allowances in GiB: {parts})")
    if not gpu_memory:
        report.ok(text + "; no GPU here to compare")
    elif need > min(gpu_memory) / GiB:
        report.fail(text + f" > {min(gpu_memory) / GiB:.0f} GiB on the smallest GPU")
    else:
        report.ok(text + f" <= {min(gpu_memory) / GiB:.0f} GiB")
    if mode == "train":
        check_checkpoint_disk(report, stage, cfg, params, zero2)
    return need


def checkpoint_gib(stage: str, params: dict, zero2: bool) -> dict:
    """GiB on disk of one training checkpoint (the trained parameters only: fp32 weights and Adam's two fp32
    moments, 12 bytes each; ZeRO-2 adds its bf16 module copy, 14) and of the final weights (motion: the whole
    transformer, bf16 base and fp32 branch; appearance: the fp32 branches)."""
    per_param = 12 + (2 if zero2 else 0)
    final = params["branch"] * 4 + (params["base"] * 2 if stage == "motion" else 0)
    return {"checkpoint": params["branch"] * per_param / GiB, "final": final / GiB}


def check_checkpoint_disk(report: Report, stage: str, cfg, params: dict, zero2: bool) -> float:
    """Free disk under ``train.loop.output_dir`` against the checkpoints kept (one more while the next is written
    before the oldest goes) plus the final weights; FAIL when it does not fit. Returns the GiB needed."""
    loop = cfg.train.loop
    sizes = checkpoint_gib(stage, params, zero2)
    written = loop.max_steps // loop.checkpoint_every + 1 if loop.checkpoint_every else 0
    kept = min(written, loop.checkpoints_total_limit + 1) if loop.checkpoints_total_limit else written
    need = kept * sizes["checkpoint"] + sizes["final"]
    probe = loop.output_dir
    while not os.path.isdir(probe):
        probe = os.path.dirname(os.path.abspath(probe))
    free = shutil.disk_usage(probe).free / GiB
    text = (f"{stage} checkpoints: {kept} x {sizes['checkpoint']:.1f} GiB (trained parameters only) + final "
            f"{sizes['final']:.1f} GiB = {need:.0f} GiB; {free:.0f} GiB free under {probe}")
    (report.ok if free >= need else report.fail)(text)
    return need


def check_motion_config(report: Report, path: str, mode: str, gpu_memory, world: int, zero2: bool,
                        batch: int | None = None) -> None:
    from motion_gen.config import load_motion_config

    cfg = load_motion_config(path)
    if cfg.model.pretrained:
        check_pipeline_folder(report, cfg.model.pretrained, ("text_encoder", "vae", "transformer"), ("tokenizer",),
                              f"motion ({path}) model.pretrained")
    else:
        report.ok(f"motion ({path}): tiny random components, no folders")
    if cfg.model.transformer and mode == "infer":
        check_model_folder(report, cfg.model.transformer, f"motion ({path}) model.transformer")
    if cfg.model.pretrained:
        check_memory(report, "motion", cfg, mode, gpu_memory, world, zero2, batch)


def check_appearance_config(report: Report, path: str, mode: str, gpu_memory, world: int, zero2: bool,
                            batch: int | None = None) -> None:
    from appearance_gen.config import load_appearance_config

    cfg = load_appearance_config(path)
    if cfg.model.source == "pretrained":
        check_pipeline_folder(report, cfg.model.base_path or "(model.base_path unset)",
                              ("transformer", "vae", "text_encoder", "text_encoder_2"), ("tokenizer", "tokenizer_2"),
                              f"appearance ({path}) model.base_path")
        if mode == "infer":
            if cfg.model.controlnet_path:
                check_model_folder(report, cfg.model.controlnet_path, f"appearance ({path}) model.controlnet_path")
            else:
                report.fail(f"appearance ({path}): model.controlnet_path is null: inference would run untrained "
                            "branches (set --set model.controlnet_path=<training's final/>)")
        check_memory(report, "appearance", cfg, mode, gpu_memory, world, zero2, batch)
    else:
        report.ok(f"appearance ({path}): tiny random components, no folders")


def check_dataset_config(report: Report, path: str) -> None:
    """The dataset recipe loads, and its throughput estimate (an estimate until a GPU run is recorded)."""
    from sim2real.dataset import load_dataset_config
    from sim2real.throughput import summary

    try:
        config, sim2real = load_dataset_config(path)
    except DataError as exc:
        report.fail(f"dataset config: {exc}")
        return
    report.ok(f"dataset {path}: {summary(sim2real, config.count)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--motion-config", action="append", default=[], help="motion YAML to check (repeatable)")
    parser.add_argument("--appearance-config", action="append", default=[], help="appearance YAML (repeatable)")
    parser.add_argument("--mode", choices=("infer", "train"), default="infer", help="what the estimate is for")
    parser.add_argument("--gpus", type=positive_int, default=None,
                        help="GPUs the run uses (default: all visible, min 1)")
    parser.add_argument("--no-zero2", action="store_true", help="training estimate without ZeRO-2 sharding (DDP)")
    parser.add_argument("--batch", type=positive_int, default=None,
                        help="micro-batch per GPU of the training estimate (default: the config's train.loop.batch_size)")
    parser.add_argument("--dataset-config", action="append", default=[],
                        help="dataset recipe (configs/dataset/*.yaml): estimated videos per GPU-hour (repeatable)")
    parser.add_argument("--outputs", default="outputs", help="where outputs go (free disk space)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    report = Report()
    check_versions(report)
    gpu_memory = check_gpus(report)
    check_attention_and_comms(report)
    check_deepspeed(report)
    check_disk(report, args.outputs)
    world = args.gpus or max(1, len(gpu_memory))
    for path in args.motion_config:
        check_motion_config(report, path, args.mode, gpu_memory, world, not args.no_zero2, args.batch)
    for path in args.appearance_config:
        check_appearance_config(report, path, args.mode, gpu_memory, world, not args.no_zero2, args.batch)
    for path in args.dataset_config:
        check_dataset_config(report, path)
    blocking = [text for level, text in report.lines if level == "FAIL"]
    print(f"preflight: {len(blocking)} blocking problem(s)" + (": " + " | ".join(blocking) if blocking else ""))
    return 1 if blocking else 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
