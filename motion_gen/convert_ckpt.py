"""Turn a training checkpoint into a diffusers transformer folder (``config.json`` + safetensors).

Accepts an accelerate checkpoint (``checkpoints/checkpoint-<step>/`` with ``model.safetensors`` or
``pytorch_model.bin``), a DeepSpeed ZeRO checkpoint written by accelerate (``.../pytorch_model/`` with
``*_model_states.pt`` and ``*_optim_states.pt``; the fp32 weights are gathered across ranks), or a training
output folder (its newest checkpoint is used). The model config comes from the checkpoint's
``trainer_state.json`` (written by ``motion_gen.train``) unless ``--transformer-config`` names a ``config.json``.
``--reference`` converts a transformer folder saved by the reference PAM code (renamed keys, five conditions).

    python -m motion_gen.convert_ckpt outputs/motion/tiny/train --out outputs/motion/tiny/transformer
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil

import torch

from data_tools.io.cli import setup_logging
from data_tools.errors import DataError
from data_tools.runtime.training import latest_checkpoint
from motion_gen.config import DTYPES
from motion_gen.model import CogVideoXConditionTransformer

logger = logging.getLogger(__name__)
# the reference model's parameter names and its fixed order of condition streams in the fusion linear
REFERENCE_KEYS = {"initial_combine_linear": "condition_embed", "transformer_blocks_copy": "condition_blocks",
                  "combine_linears": "condition_projections"}
REFERENCE_CONDITION_ORDER = ("tracking", "normal", "depth", "seg_mask", "hand_keypoints")


def resolve_checkpoint(path: str) -> str:
    """A checkpoint folder: ``path`` itself, or the newest checkpoint of a training output folder."""
    if not os.path.isdir(path):
        raise DataError(path, "checkpoint folder does not exist")
    if os.path.isfile(os.path.join(path, "trainer_state.json")) and not os.path.isdir(os.path.join(path, "checkpoints")):
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        if any(f.endswith((".safetensors", ".bin")) for f in os.listdir(path)) or _deepspeed_dir(path):
            return path
        raise DataError(path, "no checkpoint found (expected checkpoints/checkpoint-<step>/ or model weights)")
    return latest


def _deepspeed_dir(path: str) -> str | None:
    for folder in (path, *(os.path.join(path, d) for d in sorted(os.listdir(path)))):
        if os.path.isdir(folder) and any(f.endswith("_model_states.pt") for f in os.listdir(folder)):
            return folder
    return None


def load_state_dict(checkpoint: str) -> dict[str, torch.Tensor]:
    """fp32 weights of the trained module from an accelerate or DeepSpeed checkpoint folder."""
    for name in ("model.safetensors", "model_0.safetensors"):
        if os.path.isfile(os.path.join(checkpoint, name)):
            from safetensors.torch import load_file

            return load_file(os.path.join(checkpoint, name))
    for name in ("pytorch_model.bin", "pytorch_model_0.bin"):
        if os.path.isfile(os.path.join(checkpoint, name)):
            return torch.load(os.path.join(checkpoint, name), map_location="cpu", weights_only=True)
    ds = _deepspeed_dir(checkpoint)
    if ds is not None:
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        parent, tag = os.path.split(ds) if ds != checkpoint else (checkpoint, None)
        return get_fp32_state_dict_from_zero_checkpoint(parent, tag=tag)
    raise DataError(checkpoint, "no model weights (model.safetensors, pytorch_model.bin or a DeepSpeed folder)")


def read_transformer_config(checkpoint: str, override: str | None = None) -> dict:
    """The transformer's config from ``--transformer-config`` or the checkpoint's ``trainer_state.json``."""
    path = override or os.path.join(checkpoint, "trainer_state.json")
    if not os.path.isfile(path):
        raise DataError(path, "model config not found; pass --transformer-config <folder>/config.json")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if override:
        return data
    config = (data.get("config") or {}).get("transformer_config")
    if not config:
        raise DataError(path, "has no config.transformer_config (not written by motion_gen.train?)")
    return config


def save_transformer(config: dict, state: dict[str, torch.Tensor], out_dir: str, dtype: str = "fp32",
                     source: str | None = None) -> str:
    """Build the transformer from ``config`` with ``state`` (strict) and save it atomically as a diffusers folder."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = CogVideoXConditionTransformer.from_config({k: v for k, v in config.items() if not k.startswith("_")})
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if missing or unexpected:
        raise DataError(source, f"weights do not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    if DTYPES[dtype] != torch.float32:
        model.to(DTYPES[dtype])
    partial = out_dir.rstrip("/") + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, safe_serialization=True)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(partial, out_dir)
    logger.info("converted %s -> %s (%s)", source, out_dir, dtype)
    return out_dir


def convert(checkpoint: str, out_dir: str, transformer_config: str | None = None, dtype: str = "fp32") -> str:
    """Write ``out_dir`` (diffusers folder, safetensors) from a checkpoint; returns ``out_dir``."""
    checkpoint = resolve_checkpoint(checkpoint)
    config = read_transformer_config(checkpoint, transformer_config)
    state = {k.removeprefix("module."): v for k, v in load_state_dict(checkpoint).items()}
    return save_transformer(config, state, out_dir, dtype, checkpoint)


def convert_reference(folder: str, out_dir: str, dtype: str = "fp32") -> str:
    """A transformer folder saved by the reference PAM code (``CogVideoXTransformer3DModelCombination``: always
    five condition streams in its fixed order, ``num_tracking_blocks`` copies) -> this package's class with
    ``replace_condition_stream: true`` (the reference behaviour)."""
    from safetensors.torch import load_file

    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
        raise DataError(config_path, "reference transformer config missing")
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    if "num_tracking_blocks" not in config:
        raise DataError(config_path, "not a reference PAM transformer (no num_tracking_blocks)")
    files = sorted(n for n in os.listdir(folder) if n.endswith(".safetensors"))
    if not files:
        raise DataError(folder, "no .safetensors weights")
    state = {}
    for name in files:
        for key, value in load_file(os.path.join(folder, name)).items():
            for old, new in REFERENCE_KEYS.items():
                if key.startswith(old):
                    key = new + key[len(old):]
            state[key] = value
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    config.update(condition_names=list(REFERENCE_CONDITION_ORDER), num_condition_blocks=config.pop("num_tracking_blocks"),
                  replace_condition_stream=True)
    return save_transformer(config, state, out_dir, dtype, folder)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="checkpoint folder or training output folder")
    parser.add_argument("--out", required=True, help="output diffusers transformer folder")
    parser.add_argument("--transformer-config", help="config.json of the transformer (default: from trainer_state.json)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--reference", action="store_true",
                        help="the input is a transformer folder saved by the reference PAM code")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging; tracebacks of errors")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.reference:
        convert_reference(args.checkpoint, args.out, args.dtype)
    else:
        convert(args.checkpoint, args.out, args.transformer_config, args.dtype)


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
