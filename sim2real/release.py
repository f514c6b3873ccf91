"""Sim-to-real from the downloaded released weights, in one command (``scripts/sim2real_release.sh``).

    python -m sim2real.release --pam PAM --flux FLUX.1-dev --cogvideox CogVideoX-5b-I2V INPUTS... --out OUT

1. checks the three folders' layout (every missing file, tokenizers included, in one message) and the inputs;
2. converts the released checkpoints once into ``--cache`` (``appearance/``: the two-branch ``controlnet.bin``
   -> ``AppearanceControlNets``; ``motion/``: the reference motion transformer -> ``CogVideoXConditionTransformer``);
   a converted folder records its source and is reused while the source is unchanged;
3. runs ``sim2real.run`` with the release configs (49 x 480 x 720), offloading models to the CPU when the GPU
   has less memory than ``weights.offload_below_gib``.

The three paths and the cache can also come from the config (``configs/sim2real/pam_release.yaml``, ``weights:``).
Expected layout: README, "Using the released PAM weights".
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import logging
import os
from typing import Callable

from data_tools.errors import DataError
from data_tools.io.atomic import write_json
from data_tools.io.config import load_config
from sim2real.preflight import has_weights, tokenizer_problem
from sim2real.run import Sim2RealConfig, add_run_arguments, discover, run

logger = logging.getLogger("sim2real.release")
CONTROLNET_NAMES = ("controlnet.bin", "controlnet.safetensors")
FLUX_LAYOUT = {"transformer": "model", "vae": "model", "text_encoder": "model", "text_encoder_2": "model",
               "tokenizer": "tokenizer", "tokenizer_2": "tokenizer", "scheduler": "scheduler"}
# no transformer/: the released motion transformer holds the whole model (base blocks included)
COGVIDEOX_LAYOUT = {"vae": "model", "text_encoder": "model", "tokenizer": "tokenizer", "scheduler": "scheduler"}
STAMP = "converted_from.json"


@dataclasses.dataclass
class ReleaseWeights:
    """Where the downloaded weights are and where their conversions go."""

    pam: str | None = None        # the authors' release: controlnet.bin + the motion transformer folder
    flux: str | None = None       # FLUX.1-dev, diffusers layout
    cogvideox: str | None = None  # CogVideoX-5b-I2V, diffusers layout
    cache: str = "weights/pam_converted"  # converted checkpoints (made once)
    offload_below_gib: float = 100.0      # GPUs with less memory run both stages with CPU offload (an estimate)


@dataclasses.dataclass
class ReleaseConfig(Sim2RealConfig):
    """A sim2real run on the released weights: ``Sim2RealConfig`` plus ``weights``."""

    weights: ReleaseWeights = dataclasses.field(default_factory=ReleaseWeights)


@dataclasses.dataclass
class ReleaseFiles:
    controlnet: str         # the two-branch appearance checkpoint
    motion_transformer: str  # the reference motion transformer folder


def layout_problems(root: str | None, layout: dict[str, str], what: str) -> list[str]:
    """Missing parts of a diffusers model folder (``layout``: sub-folder -> model | tokenizer | scheduler)."""
    if not root:
        return [f"{what}: no folder given"]
    if not os.path.isdir(root):
        return [f"{root}: {what} folder does not exist"]
    problems = []
    for sub, kind in layout.items():
        folder = os.path.join(root, sub)
        if not os.path.isdir(folder):
            problems.append(f"{folder}: missing")
        elif kind == "model":
            if not os.path.isfile(os.path.join(folder, "config.json")):
                problems.append(f"{folder}/config.json: missing")
            if not has_weights(folder):
                problems.append(f"{folder}: no weights (*.safetensors / *.bin)")
        elif kind == "scheduler" and not os.path.isfile(os.path.join(folder, "scheduler_config.json")):
            problems.append(f"{folder}/scheduler_config.json: missing")
        elif kind == "tokenizer" and (problem := tokenizer_problem(folder)):
            problems.append(f"{folder}: {problem}")
    return problems


def _is_reference_transformer(folder: str) -> bool:
    config = os.path.join(folder, "config.json")
    if not os.path.isfile(config):
        return False
    try:
        with open(config, encoding="utf-8") as f:
            return "num_tracking_blocks" in json.load(f)
    except (OSError, json.JSONDecodeError):
        return False


def find_pam_files(pam: str | None, problems: list[str]) -> ReleaseFiles | None:
    """The appearance checkpoint and motion transformer folder inside the release (searched 3 levels deep)."""
    if not pam or not os.path.isdir(pam):
        problems.append(f"{pam}: PAM release folder does not exist" if pam else "PAM release: no folder given")
        return None
    pam = os.path.normpath(pam)
    controlnets, transformers = [], []
    for folder, dirs, files in os.walk(pam):
        if folder[len(pam):].count(os.sep) >= 3:
            dirs[:] = []
        dirs.sort()
        controlnets += [os.path.join(folder, f) for f in sorted(files) if f in CONTROLNET_NAMES]
        if _is_reference_transformer(folder):
            transformers.append(folder)
    for found, what in ((controlnets, f"appearance checkpoint ({' or '.join(CONTROLNET_NAMES)})"),
                        (transformers, "motion transformer folder (config.json with num_tracking_blocks)")):
        if not found:
            problems.append(f"{pam}: no {what}")
        elif len(found) > 1:
            problems.append(f"{pam}: several candidates for the {what}: {found}; keep one")
    for folder in transformers[:1]:
        if not has_weights(folder):
            problems.append(f"{folder}: no weights (*.safetensors)")
    if len(controlnets) == 1 and len(transformers) == 1:
        return ReleaseFiles(controlnets[0], transformers[0])
    return None


def check_release(weights: ReleaseWeights) -> ReleaseFiles:
    """The release's files; one DataError listing every problem of the three folders."""
    problems: list[str] = []
    files = find_pam_files(weights.pam, problems)
    problems += layout_problems(weights.flux, FLUX_LAYOUT, "FLUX.1-dev")
    problems += layout_problems(weights.cogvideox, COGVIDEOX_LAYOUT, "CogVideoX-5b-I2V")
    if problems:
        raise DataError(None, f"the weight folders are incomplete ({len(problems)} problems): " + "; ".join(problems))
    return files


def source_signature(path: str) -> dict:
    """Size and modification time of a file, or of every file in a folder: what a conversion was made from."""
    paths = [path] if os.path.isfile(path) else sorted(glob.glob(os.path.join(path, "*")))
    return {"source": os.path.abspath(path),
            "files": {os.path.basename(p): [os.path.getsize(p), int(os.path.getmtime(p))] for p in paths
                      if os.path.isfile(p)}}


def convert_once(source: str, out_dir: str, convert: Callable[[str, str], str]) -> str:
    """``convert(source, out_dir)`` unless ``out_dir`` already holds a conversion of this unchanged source."""
    signature = source_signature(source)
    stamp = os.path.join(out_dir, STAMP)
    if os.path.isfile(stamp):
        with open(stamp, encoding="utf-8") as f:
            if json.load(f) == signature:
                logger.info("%s: already converted from %s", out_dir, source)
                return out_dir
    logger.info("converting %s -> %s (once)", source, out_dir)
    convert(source, out_dir)
    write_json(stamp, signature)
    return out_dir


def convert_release(files: ReleaseFiles, weights: ReleaseWeights) -> tuple[str, str]:
    """The converted (appearance, motion) folders under ``weights.cache`` (bf16, as the reference runs them)."""
    from appearance_gen.convert_ckpt import convert_reference as convert_appearance
    from motion_gen.convert_ckpt import convert_reference as convert_motion

    appearance = convert_once(files.controlnet, os.path.join(weights.cache, "appearance"),
                              lambda src, out: convert_appearance(src, out, flux=weights.flux, dtype="bf16"))
    motion = convert_once(files.motion_transformer, os.path.join(weights.cache, "motion"),
                          lambda src, out: convert_motion(src, out, dtype="bf16"))
    return appearance, motion


def needs_offload(weights: ReleaseWeights, device: str | None) -> bool:
    """True on a CUDA device with less memory than ``weights.offload_below_gib``."""
    import torch

    if not torch.cuda.is_available() or (device and not device.startswith("cuda")):
        return False
    index = torch.device(device).index if device and ":" in device else torch.cuda.current_device()
    total = torch.cuda.get_device_properties(index).total_memory / 2**30
    if total < weights.offload_below_gib:
        logger.info("GPU has %.0f GiB (< %.0f): models are offloaded to the CPU between uses", total,
                    weights.offload_below_gib)
        return True
    return False


def release_sim2real_config(cfg: ReleaseConfig, appearance: str, motion: str, offload: bool) -> Sim2RealConfig:
    """The plain sim2real config: the release's model configs pointed at the local and converted weights."""
    w = cfg.weights
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(Sim2RealConfig)}
    fields["appearance_overrides"] = [*cfg.appearance_overrides, f"model.base_path={w.flux}",
                                      f"model.controlnet_path={appearance}"] + (["model.cpu_offload=true"] if offload else [])
    fields["motion_overrides"] = [*cfg.motion_overrides, f"model.pretrained={w.cogvideox}",
                                  f"model.transformer={motion}"] + (["generate.cpu_offload=true"] if offload else [])
    return Sim2RealConfig(**fields)


def prepare_release(cfg: ReleaseConfig, offload: str = "auto") -> Sim2RealConfig:
    """Check the weight folders, convert the release once (one worker at a time: shards started together wait for
    the first conversion and reuse it) and return the sim2real config on the converted weights. ``offload``:
    auto | on | off."""
    from data_tools.runtime.claims import exclusive

    files = check_release(cfg.weights)
    with exclusive(os.path.join(cfg.weights.cache, ".convert.lock")):
        appearance, motion = convert_release(files, cfg.weights)
    use_offload = offload == "on" or (offload == "auto" and needs_offload(cfg.weights, cfg.device))
    return release_sim2real_config(cfg, appearance, motion, use_offload)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pam", help="the PAM release folder (controlnet.bin + motion transformer folder)")
    parser.add_argument("--flux", help="FLUX.1-dev folder (diffusers layout)")
    parser.add_argument("--cogvideox", help="CogVideoX-5b-I2V folder (diffusers layout)")
    parser.add_argument("--cache", help="folder for the converted checkpoints (default: the config's weights.cache)")
    parser.add_argument("--offload", choices=("auto", "on", "off"), default="auto",
                        help="CPU offload of both stages (auto: when the GPU is smaller than weights.offload_below_gib)")
    return add_run_arguments(parser, "configs/sim2real/pam_release.yaml", "outputs/sim2real_release").parse_args(argv)


def main(argv=None) -> int:
    from data_tools.io.cli import setup_logging

    args = parse_args(argv)
    setup_logging(args.verbose)
    cfg = load_config(ReleaseConfig, args.config, args.set)
    for name in ("pam", "flux", "cogvideox", "cache"):
        if getattr(args, name):
            setattr(cfg.weights, name, getattr(args, name))
    check_release(cfg.weights)
    discover(args.inputs)  # every input is checked before anything expensive
    config = prepare_release(cfg, args.offload)
    run(args.inputs, args.out, config, args.shard, args.first_frames, args.stage, args.overwrite)
    return 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
