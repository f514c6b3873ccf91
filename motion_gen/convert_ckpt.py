"""Turn a training checkpoint into a diffusers transformer folder (``config.json`` + safetensors).

Accepts an accelerate checkpoint (``checkpoints/checkpoint-<step>/`` with ``model.safetensors`` or
``pytorch_model.bin``), a DeepSpeed ZeRO checkpoint written by accelerate (``.../pytorch_model/`` with
``*_model_states.pt`` and ``*_optim_states.pt``; the fp32 weights are gathered across ranks), or a training
output folder (its newest checkpoint is used). The model config comes from the checkpoint's
``trainer_state.json`` (written by ``motion_gen.train``) unless ``--transformer-config`` names a ``config.json``.

    python -m motion_gen.convert_ckpt outputs/motion/tiny/train --out outputs/motion/tiny/transformer
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil

import torch

from data_tools.cli import setup_logging
from data_tools.errors import DataError
from data_tools.training import latest_checkpoint
from motion_gen.config import DTYPES
from motion_gen.model import CogVideoXConditionTransformer

logger = logging.getLogger(__name__)


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


def convert(checkpoint: str, out_dir: str, transformer_config: str | None = None, dtype: str = "fp32") -> str:
    """Write ``out_dir`` (diffusers folder, safetensors) from a checkpoint; returns ``out_dir``."""
    from accelerate import init_empty_weights

    checkpoint = resolve_checkpoint(checkpoint)
    config = read_transformer_config(checkpoint, transformer_config)
    state = load_state_dict(checkpoint)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    with init_empty_weights():
        model = CogVideoXConditionTransformer.from_config({k: v for k, v in config.items() if not k.startswith("_")})
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if missing or unexpected:
        raise DataError(checkpoint, f"weights do not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    if DTYPES[dtype] != torch.float32:
        model.to(DTYPES[dtype])
    partial = out_dir.rstrip("/") + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, safe_serialization=True)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(partial, out_dir)
    logger.info("converted %s -> %s (%s)", checkpoint, out_dir, dtype)
    return out_dir


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="checkpoint folder or training output folder")
    parser.add_argument("--out", required=True, help="output diffusers transformer folder")
    parser.add_argument("--transformer-config", help="config.json of the transformer (default: from trainer_state.json)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    args = parser.parse_args(argv)
    setup_logging()
    convert(args.checkpoint, args.out, args.transformer_config, args.dtype)


if __name__ == "__main__":
    main()
