"""Appearance checkpoints -> an ``AppearanceControlNets`` folder (``config.json`` + safetensors, ``from_pretrained``).

Two kinds of input:

* this engine's training checkpoints (``checkpoints/checkpoint-<step>/`` with DDP ``model.safetensors`` or a
  DeepSpeed ``pytorch_model/`` folder, or a training output folder: its newest checkpoint). The branches' config
  comes from the checkpoint's ``trainer_state.json`` unless ``--controlnet-config`` names a ``config.json``. A
  checkpoint holds only the trained parameters: the frozen ones (the last block's unused text-stream output) are
  rebuilt from the run config in the same file (FLUX from ``model.base_path``, ``--base-path`` to replace it)::

      python -m appearance_gen.convert_ckpt outputs/appearance_flux --out outputs/appearance_flux/step_latest

* ``--reference controlnet.bin``: the PAM authors' two-branch x-flux file (``torch.save`` or safetensors; keys
  ``controlnet1.*`` = physical branch: depth + normal, ``controlnet2.*`` = semantic branch: hand keypoints + seg
  mask; each an x-flux ``ControlNetFlux`` in BFL FLUX naming). Every dimension is read from the tensors' shapes;
  ``--flux`` (the FLUX base folder) supplies the rotary axes and checks that the branches fit that base::

      python -m appearance_gen.convert_ckpt --reference PAM/controlnet.bin --flux FLUX.1-dev --out weights/pam_appearance

diffusers' own BFL-to-diffusers FLUX converter (``convert_flux_transformer_checkpoint_to_diffusers``) cannot serve
a ControlNet: it requires single blocks and a final layer (absent here) and hard-codes FLUX.1's 3072 width, so
the double-block renaming is written out below (the same names that converter uses).
"""
from __future__ import annotations

import argparse
import logging
import os
import re

import torch

from appearance_gen.model import AppearanceControlNets
from data_tools.errors import DataError, read_json_file
from data_tools.io.cli import setup_logging
from data_tools.runtime.checkpoints import (DTYPE_NAMES, build_and_load, load_checkpoint_state, load_weights_file,
                                            read_model_config, resolve_checkpoint, run_config, run_folder,
                                            save_model_folder)

logger = logging.getLogger(__name__)
# the reference's two branches: key prefix -> (branch name, condition maps in channel order)
REFERENCE_BRANCHES = {"controlnet1": ("physical", ["depth", "normal"]),
                      "controlnet2": ("semantic", ["hand_keypoints", "seg_mask"])}
# x-flux/BFL module -> diffusers FluxControlNetModel module (parameters .weight/.bias follow)
EMBEDDER_NAMES = {
    "img_in": "x_embedder", "txt_in": "context_embedder", "pos_embed_input": "controlnet_x_embedder",
    "time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
    "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
    "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
    "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
    "guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",
    "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2",
}
DOUBLE_BLOCK_NAMES = {
    "img_mod.lin": "norm1.linear", "txt_mod.lin": "norm1_context.linear",
    "img_attn.proj": "attn.to_out.0", "txt_attn.proj": "attn.to_add_out",
    "img_mlp.0": "ff.net.0.proj", "img_mlp.2": "ff.net.2",
    "txt_mlp.0": "ff_context.net.0.proj", "txt_mlp.2": "ff_context.net.2",
}
# RMSNorm scales of the query/key heads (whole parameter names)
DOUBLE_BLOCK_NORMS = {
    "img_attn.norm.query_norm.scale": "attn.norm_q.weight", "img_attn.norm.key_norm.scale": "attn.norm_k.weight",
    "txt_attn.norm.query_norm.scale": "attn.norm_added_q.weight",
    "txt_attn.norm.key_norm.scale": "attn.norm_added_k.weight",
}
# fused q|k|v projections -> three diffusers projections
DOUBLE_BLOCK_QKV = {"img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
                    "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")}
FLUX1_AXES_DIMS_ROPE = [16, 56, 56]
_DOUBLE_RE = re.compile(r"^double_blocks\.(\d+)\.(.+)\.(weight|bias|scale)$")
_INDEXED_RE = re.compile(r"^(controlnet_blocks|input_hint_block)\.(\d+)\.(weight|bias)$")


def hint_block_names(indices: list[int]) -> dict[int, str]:
    """Sequential conv indices of an x-flux ``input_hint_block`` (0, 2, ..., 14 with SiLUs between) -> the module
    names of diffusers' ``ControlNetConditioningEmbedding``: ``conv_in``, ``blocks.0..n-3``, ``conv_out``."""
    indices = sorted(indices)
    names = {indices[0]: "conv_in", indices[-1]: "conv_out"}
    names.update({index: f"blocks.{k}" for k, index in enumerate(indices[1:-1])})
    return names


def convert_reference_branch(state: dict[str, torch.Tensor], where: str) -> tuple[dict, dict]:
    """One x-flux ``ControlNetFlux`` state (keys without the branch prefix) -> (``FluxControlNetModel`` state,
    hint-block state). Unknown keys are an error naming them."""
    net, hint, unknown = {}, {}, []
    hint_indices = sorted({int(m[2]) for m in map(_INDEXED_RE.match, state) if m and m[1] == "input_hint_block"})
    hint_names = hint_block_names(hint_indices) if len(hint_indices) >= 2 else {}
    for key, value in state.items():
        module, _, param = key.rpartition(".")
        double, indexed = _DOUBLE_RE.match(key), _INDEXED_RE.match(key)
        if module in EMBEDDER_NAMES and param in ("weight", "bias"):
            net[f"{EMBEDDER_NAMES[module]}.{param}"] = value
        elif indexed and indexed[1] == "controlnet_blocks":
            net[key] = value
        elif indexed and indexed[1] == "input_hint_block" and hint_names:
            hint[f"{hint_names[int(indexed[2])]}.{indexed[3]}"] = value
        elif double and f"{double[2]}.{double[3]}" in DOUBLE_BLOCK_NORMS:
            net[f"transformer_blocks.{double[1]}.{DOUBLE_BLOCK_NORMS[double[2] + '.' + double[3]]}"] = value
        elif double and double[2] in DOUBLE_BLOCK_NAMES and double[3] != "scale":
            net[f"transformer_blocks.{double[1]}.{DOUBLE_BLOCK_NAMES[double[2]]}.{double[3]}"] = value
        elif double and double[2] in DOUBLE_BLOCK_QKV and double[3] != "scale":
            if value.shape[0] % 3:
                raise DataError(where, f"{key} has {value.shape[0]} rows, not a fused q|k|v projection")
            for name, part in zip(DOUBLE_BLOCK_QKV[double[2]], value.chunk(3, dim=0)):
                net[f"transformer_blocks.{double[1]}.{name}.{double[3]}"] = part.contiguous()
        else:
            unknown.append(key)
    if unknown:
        raise DataError(where, f"unknown keys for an x-flux ControlNet: {', '.join(sorted(unknown))}")
    return net, hint


def reference_branch_config(state: dict[str, torch.Tensor], where: str) -> dict:
    """Sizes of one x-flux branch, read from its tensors' shapes (raises naming the key that is missing)."""
    def get(key):
        if key not in state:
            raise DataError(where, f"missing key {key}")
        return state[key]

    blocks = sorted({int(m[1]) for m in map(_DOUBLE_RE.match, state) if m})
    if not blocks:
        raise DataError(where, "no double_blocks.* keys: not an x-flux ControlNet")
    hint = sorted({int(m[2]) for m in map(_INDEXED_RE.match, state) if m and m[1] == "input_hint_block"})
    if len(hint) < 2:
        raise DataError(where, "input_hint_block needs at least two convs")
    hint_names = hint_block_names(hint)
    stride_convs = [i for i in hint if hint_names[i].startswith("blocks.") and int(hint_names[i][7:]) % 2 == 1]
    head_dim = get("double_blocks.0.img_attn.norm.query_norm.scale").shape[0]
    inner, in_channels = get("img_in.weight").shape
    return {"in_channels": in_channels, "num_layers": blocks[-1] + 1, "num_single_layers": 0,
            "attention_head_dim": head_dim, "num_attention_heads": inner // head_dim,
            "joint_attention_dim": get("txt_in.weight").shape[1],
            "pooled_projection_dim": get("vector_in.in_layer.weight").shape[1],
            "guidance_embeds": "guidance_in.in_layer.weight" in state,
            "hint_channels": get(f"input_hint_block.{hint[-1]}.weight").shape[0],
            "hint_block_out_channels": [get(f"input_hint_block.{hint[0]}.weight").shape[0]]
                                       + [get(f"input_hint_block.{i}.weight").shape[0] for i in stride_convs],
            "condition_channels": get(f"input_hint_block.{hint[0]}.weight").shape[1]}


def flux_transformer_config(flux: str) -> dict:
    path = os.path.join(flux, "transformer", "config.json")
    if not os.path.isfile(path):
        raise DataError(path, "FLUX transformer config missing (is --flux a diffusers FLUX folder?)")
    return read_json_file(path, "FLUX transformer config")


def check_fits_base(config: dict, base: dict, where: str) -> None:
    """DataError unless the branches' widths equal the FLUX base transformer's."""
    keys = ("in_channels", "attention_head_dim", "num_attention_heads", "joint_attention_dim",
            "pooled_projection_dim", "guidance_embeds")
    wrong = [f"{k} {config[k]} != {base.get(k)}" for k in keys if config[k] != base.get(k)]
    if wrong:
        raise DataError(where, f"the ControlNets do not fit the FLUX base: {', '.join(wrong)}")


def reference_to_engine(state: dict[str, torch.Tensor], where: str, flux: str | None = None) -> tuple[dict, dict]:
    """The reference's two-branch state -> (``AppearanceControlNets`` config, state)."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    stray = sorted(k for k in state if k.split(".", 1)[0] not in REFERENCE_BRANCHES)
    if stray:
        raise DataError(where, f"unknown keys (expected controlnet1.* and controlnet2.*): {', '.join(stray[:20])}")
    config, converted = None, {}
    for prefix, (branch, maps) in REFERENCE_BRANCHES.items():
        local = {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}
        if not local:
            raise DataError(where, f"missing branch {prefix}.* ({branch}: {' + '.join(maps)})")
        sizes = reference_branch_config(local, f"{where} [{prefix}]")
        if sizes["condition_channels"] != 3 * len(maps):
            raise DataError(where, f"{prefix} reads {sizes['condition_channels']} channels, expected "
                                   f"{3 * len(maps)} ({' + '.join(maps)})")
        if config is not None and sizes != config:
            raise DataError(where, f"branches differ in size: {config} vs {sizes}")
        config = sizes
        net, hint = convert_reference_branch(local, f"{where} [{prefix}]")
        converted.update({f"controlnets.{branch}.{k}": v for k, v in net.items()})
        converted.update({f"hint_blocks.{branch}.{k}": v for k, v in hint.items()})
    config.pop("condition_channels")
    if flux:
        base = flux_transformer_config(flux)
        check_fits_base(config, base, where)
        config["axes_dims_rope"] = list(base["axes_dims_rope"])
    elif sum(FLUX1_AXES_DIMS_ROPE) == config["attention_head_dim"]:
        config["axes_dims_rope"] = FLUX1_AXES_DIMS_ROPE
    else:
        raise DataError(where, f"head size {config['attention_head_dim']} is not FLUX.1's: pass --flux <base folder> "
                               "to read the rotary axes")
    config.update(branches={b: maps for b, maps in REFERENCE_BRANCHES.values()},
                  conditioning_scales={b: 1.0 for b, _ in REFERENCE_BRANCHES.values()}, blocks_repeat=True)
    return config, converted


def convert_reference(path: str, out_dir: str, flux: str | None = None, dtype: str | None = None) -> str:
    """The reference's ``controlnet.bin`` (or ``.safetensors``) -> an ``AppearanceControlNets`` folder."""
    config, state = reference_to_engine(load_weights_file(path), path, flux)
    model = build_and_load(AppearanceControlNets, config, state, path)
    return save_model_folder(model, out_dir, DTYPE_NAMES[dtype] if dtype else None, path)


def initial_controlnets(checkpoint: str, base_path: str | None = None) -> AppearanceControlNets:
    """The branches the run started from (trainable flags as in training), rebuilt from the run config in the
    checkpoint's ``trainer_state.json``; ``base_path`` replaces ``model.base_path``."""
    from appearance_gen.components import build_controlnets
    from appearance_gen.config import AppearanceConfig

    cfg = run_config(checkpoint, "appearance", AppearanceConfig)
    cfg.model.base_path = run_folder(checkpoint, cfg.model.base_path, base_path, "--base-path")
    return build_controlnets(cfg, branch_sources(cfg.model)).float().set_trainable()


def branch_sources(model):
    """What new branches are made from: the base's transformer and its VAE's config. For a FLUX folder only those
    two are read (not the text encoders or the VAE's weights, 10 GB of the 34 GB); tiny components are built whole."""
    from types import SimpleNamespace

    from diffusers import AutoencoderKL, FluxTransformer2DModel

    from appearance_gen.components import build_components, resolve_dtype

    if model.source != "pretrained":
        return build_components(model)
    for sub in ("transformer", "vae"):
        if not os.path.isfile(os.path.join(model.base_path, sub, "config.json")):
            raise DataError(os.path.join(model.base_path, sub), "missing component folder of the FLUX base model")
    transformer = FluxTransformer2DModel.from_pretrained(model.base_path, subfolder="transformer",
                                                         torch_dtype=resolve_dtype(model.dtype))
    vae_config = AutoencoderKL.load_config(model.base_path, subfolder="vae")
    return SimpleNamespace(transformer=transformer.requires_grad_(False), vae=SimpleNamespace(config=vae_config))


def convert(checkpoint: str, out_dir: str, controlnet_config: str | None = None, dtype: str | None = None,
            base_path: str | None = None) -> str:
    """A training checkpoint (DDP or DeepSpeed) or training output folder -> an ``AppearanceControlNets`` folder."""
    checkpoint = resolve_checkpoint(checkpoint)
    config = read_model_config(checkpoint, "controlnet_config", controlnet_config, "--controlnet-config")
    model = build_and_load(AppearanceControlNets, config, load_checkpoint_state(checkpoint), checkpoint,
                           base=lambda: initial_controlnets(checkpoint, base_path))
    return save_model_folder(model, out_dir, DTYPE_NAMES[dtype] if dtype else None, checkpoint)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", help="training checkpoint folder or training output folder")
    parser.add_argument("--reference", metavar="FILE", help="the reference's two-branch controlnet.bin / .safetensors")
    parser.add_argument("--out", required=True, help="output AppearanceControlNets folder")
    parser.add_argument("--flux", help="FLUX base folder (diffusers layout): rotary axes and a size check (--reference)")
    parser.add_argument("--controlnet-config", help="config.json of the branches (default: from trainer_state.json)")
    parser.add_argument("--base-path", help="FLUX folder of the frozen parts (default: the run config's model.base_path)")
    parser.add_argument("--dtype", choices=sorted(DTYPE_NAMES), default=None, help="default: as stored")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if bool(args.checkpoint) == bool(args.reference):
        parser.error("give either a training checkpoint or --reference FILE")
    setup_logging(args.verbose)
    if args.reference:
        convert_reference(args.reference, args.out, args.flux, args.dtype)
    else:
        convert(args.checkpoint, args.out, args.controlnet_config, args.dtype, args.base_path)
    return 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
