"""Turn a training checkpoint into a diffusers transformer folder (``config.json`` + safetensors).

Accepts an accelerate checkpoint (``checkpoints/checkpoint-<step>/`` with ``model.safetensors`` or
``pytorch_model.bin``), a DeepSpeed ZeRO checkpoint written by accelerate (``.../pytorch_model/`` with
``*_model_states.pt`` and ``*_optim_states.pt``; the fp32 weights are gathered across ranks), or a training
output folder (its newest checkpoint is used). The model config comes from the checkpoint's
``trainer_state.json`` (written by ``motion_gen.train``) unless ``--transformer-config`` names a ``config.json``.
A checkpoint holds only the trained condition branch: the frozen base comes from the run's config in the same
file (``model.pretrained``, or the tiny seed; ``--pretrained FOLDER`` when the base lies elsewhere on this machine).
``--reference [FOLDER]`` converts a transformer folder saved by the reference PAM code (renamed keys, five
conditions). ``scripts/convert_ckpt.sh`` (``sim2real.convert_ckpt``) picks this or the appearance converter.

    python -m motion_gen.convert_ckpt outputs/motion/tiny/train --out outputs/motion/tiny/transformer
"""
from __future__ import annotations

import argparse
import logging
import os

import torch

from data_tools.io.cli import setup_logging
from data_tools.errors import DataError, read_json_file
from data_tools.runtime.checkpoints import (build_and_load, load_checkpoint_state, load_weights_file, read_model_config,
                                            resolve_checkpoint, run_config, run_folder,
                                            save_model_folder)
from motion_gen.config import DTYPES, MotionConfig
from motion_gen.model import CogVideoXConditionTransformer

logger = logging.getLogger(__name__)
# the reference model's parameter names and its fixed order of condition streams in the fusion linear
REFERENCE_KEYS = {"initial_combine_linear": "condition_embed", "transformer_blocks_copy": "condition_blocks",
                  "combine_linears": "condition_projections"}
REFERENCE_CONDITION_ORDER = ("tracking", "normal", "depth", "seg_mask", "hand_keypoints")


def save_transformer(config: dict, state: dict[str, torch.Tensor], out_dir: str, dtype: str = "fp32",
                     source: str | None = None, base=None) -> str:
    """Build the transformer from ``config`` with ``state`` (every key checked; only the trained ones when
    ``base()`` rebuilds the frozen rest) and save it atomically."""
    model = build_and_load(CogVideoXConditionTransformer, {k: v for k, v in config.items() if not k.startswith("_")},
                           state, source, base)
    return save_model_folder(model, out_dir, None if DTYPES[dtype] == torch.float32 else DTYPES[dtype], source)


def frozen_base(checkpoint: str, pretrained: str | None = None) -> CogVideoXConditionTransformer:
    """The transformer the run started from (base and initial branch, trainable flags as in training), rebuilt
    from the run config in the checkpoint's ``trainer_state.json``; ``pretrained`` replaces ``model.pretrained``."""
    from motion_gen.components import load_transformer

    cfg = run_config(checkpoint, "motion", MotionConfig)
    if cfg.model.transformer:   # the run started from a trained folder (model.transformer), not a CogVideoX base
        if pretrained:
            raise DataError(checkpoint, "--pretrained replaces model.pretrained, but this run started from "
                                        f"model.transformer {cfg.model.transformer}")
        cfg.model.transformer = run_folder(checkpoint, cfg.model.transformer, None, "model.transformer (as it was)")
    cfg.model.pretrained = run_folder(checkpoint, cfg.model.pretrained, pretrained, "--pretrained")
    state = read_json_file(os.path.join(checkpoint, "trainer_state.json"), "trainer state")
    built = state["config"].get("build_dtype")   # the dtype training built in (bf16 on CUDA), random draws included
    transformer = load_transformer(cfg.model, cfg.generate, getattr(torch, built) if built else None)
    transformer.set_trainable(train_base=cfg.train.train_base)
    for name, p in transformer.named_parameters():   # then cast as the trainer did (frozen bf16, trained fp32)
        recorded = (state.get("frozen") or {}).get(name)
        p.data = p.data.to(getattr(torch, recorded[1])) if recorded else p.data.float()
    return transformer


def convert(checkpoint: str, out_dir: str, transformer_config: str | None = None, dtype: str = "fp32",
            pretrained: str | None = None) -> str:
    """Write ``out_dir`` (diffusers folder, safetensors) from a checkpoint; returns ``out_dir``."""
    checkpoint = resolve_checkpoint(checkpoint)
    config = read_model_config(checkpoint, "transformer_config", transformer_config, "--transformer-config")
    return save_transformer(config, load_checkpoint_state(checkpoint), out_dir, dtype, checkpoint,
                            base=lambda: frozen_base(checkpoint, pretrained))


def convert_reference(folder: str, out_dir: str, dtype: str = "fp32") -> str:
    """A transformer folder saved by the reference PAM code (``CogVideoXTransformer3DModelCombination``: always
    five condition streams in its fixed order, ``num_tracking_blocks`` copies) -> this package's class with
    ``replace_condition_stream: true`` (the reference behaviour)."""
    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
        raise DataError(config_path, "reference transformer config missing")
    config = read_json_file(config_path, "reference transformer config")
    if not isinstance(config, dict) or "num_tracking_blocks" not in config:
        raise DataError(config_path, "not a reference PAM transformer (no num_tracking_blocks)")
    files = sorted(n for n in os.listdir(folder) if n.endswith(".safetensors"))
    if not files:
        raise DataError(folder, "no .safetensors weights")
    state = {}
    for name in files:
        for key, value in load_weights_file(os.path.join(folder, name)).items():
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
    parser.add_argument("checkpoint", nargs="?", help="checkpoint folder or training output folder")
    parser.add_argument("--out", required=True, help="output diffusers transformer folder")
    parser.add_argument("--transformer-config", help="config.json of the transformer (default: from trainer_state.json)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--pretrained", metavar="FOLDER",
                        help="CogVideoX folder of the frozen base (default: the run config's model.pretrained)")
    parser.add_argument("--reference", nargs="?", const=True, metavar="FOLDER",
                        help="convert a transformer folder saved by the reference PAM code (FOLDER, or the positional)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging; tracebacks of errors")
    args = parser.parse_args(argv)
    source = args.reference if isinstance(args.reference, str) else args.checkpoint
    if not source:
        parser.error("give a checkpoint folder (or --reference FOLDER)")
    setup_logging(args.verbose)
    if args.reference:
        convert_reference(source, args.out, args.dtype)
    else:
        convert(args.checkpoint, args.out, args.transformer_config, args.dtype, args.pretrained)


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
