"""Reading training checkpoints and writing converted model folders (both stages' ``convert_ckpt``).

A checkpoint is what ``Trainer`` writes under ``<output_dir>/checkpoints/checkpoint-<step>/``: accelerate's
``model.safetensors`` (DDP / one process), ``pytorch_model.bin``, or a DeepSpeed ZeRO folder
(``pytorch_model/*_model_states.pt``; fp32 weights gathered across ranks), plus ``trainer_state.json`` whose
``config`` carries the run config and the model's own config under a stage-specific key.

Checkpoints hold only the trained weights (``data_tools.runtime.training``); ``build_and_load`` then takes the
frozen ones from a model rebuilt from the run config (``base``). Older checkpoints with every weight still load
without it.
"""
from __future__ import annotations

import logging
import os
import shutil
from typing import Sequence

import torch

from data_tools.io.atomic import umask_permissions
from data_tools.errors import DataError, read_json_file, require_output_dir
from data_tools.io.config import from_dict
from data_tools.runtime.training import check_frozen_weights, latest_checkpoint

logger = logging.getLogger(__name__)
DTYPE_NAMES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}  # --dtype of the converters


def resolve_checkpoint(path: str) -> str:
    """A checkpoint folder: ``path`` itself, or the newest checkpoint of a training output folder."""
    if not os.path.isdir(path):
        raise DataError(path, "checkpoint folder does not exist")
    if os.path.isfile(os.path.join(path, "trainer_state.json")) and not os.path.isdir(os.path.join(path, "checkpoints")):
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        if any(f.endswith((".safetensors", ".bin")) for f in os.listdir(path)) or deepspeed_dir(path):
            return path
        raise DataError(path, "no checkpoint found (expected checkpoints/checkpoint-<step>/ or model weights)")
    return latest


def deepspeed_dir(path: str) -> str | None:
    """The folder holding DeepSpeed ``*_model_states.pt`` files: ``path`` or one of its children."""
    for folder in (path, *(os.path.join(path, d) for d in sorted(os.listdir(path)))):
        if os.path.isdir(folder) and any(f.endswith("_model_states.pt") for f in os.listdir(folder)):
            return folder
    return None


def load_weights_file(path: str) -> dict[str, torch.Tensor]:
    """A state dict from one ``.safetensors`` or ``torch.save`` file (tensors only; no code is unpickled)."""
    if not os.path.isfile(path):
        raise DataError(path, "weights file does not exist")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except Exception as exc:  # safetensors raises its own error types
            raise DataError(path, f"not a readable safetensors file ({exc})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch's message advises weights_only=False, which would run code from the file: not passed on
        raise DataError(path, "not a torch.save file of tensors (empty, truncated, or holds pickled objects other "
                              "than tensors)") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(path, "does not hold a state dict (a mapping of names to tensors)")
    return state


def load_checkpoint_state(checkpoint: str) -> dict[str, torch.Tensor]:
    """fp32 weights of the trained module from an accelerate or DeepSpeed checkpoint folder (wrapper prefixes
    such as DDP's ``module.`` removed)."""
    state = None
    for name in ("model.safetensors", "model_0.safetensors", "pytorch_model.bin", "pytorch_model_0.bin"):
        if os.path.isfile(os.path.join(checkpoint, name)):
            state = load_weights_file(os.path.join(checkpoint, name))
            break
    if state is None:
        ds = deepspeed_dir(checkpoint)
        if ds is None:
            raise DataError(checkpoint, "no model weights (model.safetensors, pytorch_model.bin or a DeepSpeed folder)")
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        parent, tag = os.path.split(ds) if ds != checkpoint else (checkpoint, None)
        state = get_fp32_state_dict_from_zero_checkpoint(parent, tag=tag)
    return {k.removeprefix("module."): v for k, v in state.items()}


def read_model_config(checkpoint: str, key: str, override: str | None = None, option: str = "--config") -> dict:
    """The model's config: the JSON file ``override`` (a saved folder's ``config.json``) or ``config[key]`` of the
    checkpoint's ``trainer_state.json``; ``option`` names the command-line flag in the error message."""
    path = override or os.path.join(checkpoint, "trainer_state.json")
    if not os.path.isfile(path):
        raise DataError(path, f"model config not found; pass {option} <folder>/config.json")
    data = read_json_file(path, "model config")
    if override:
        return {k: v for k, v in data.items() if not k.startswith("_")}
    config = (data.get("config") or {}).get(key)
    if not config:
        raise DataError(path, f"has no config.{key} (written by an older trainer?); pass {option} <folder>/config.json")
    return {k: v for k, v in config.items() if not k.startswith("_")}


def trainer_config_keys(checkpoint: str) -> list[str]:
    """Top-level keys of ``config`` in a checkpoint's ``trainer_state.json`` (empty when there is none)."""
    path = os.path.join(checkpoint, "trainer_state.json")
    if not os.path.isfile(path):
        return []
    state = read_json_file(path, "trainer state")
    return list(((state if isinstance(state, dict) else {}).get("config") or {}).keys())


def check_state_keys(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str | None) -> None:
    """DataError naming every missing, unexpected and mis-shaped weight of ``state`` against ``model``."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
                    if k in state and tuple(state[k].shape) != tuple(v.shape))
    problems = [f"{label}: {', '.join(items)}" for label, items in
                (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)) if items]
    if problems:
        raise DataError(source, "weights do not fit the model; " + "; ".join(problems))


def save_model_folder(model, out_dir: str, dtype: torch.dtype | None = None, source: str | None = None) -> str:
    """``model.save_pretrained`` (safetensors) into ``out_dir`` atomically (written beside it, then renamed)."""
    if dtype is not None:
        model.to(dtype)
    out_dir = out_dir.rstrip("/")
    require_output_dir(out_dir)
    partial = out_dir + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        model.save_pretrained(partial, safe_serialization=True)
        umask_permissions(partial)
        shutil.rmtree(out_dir, ignore_errors=True)
        os.replace(partial, out_dir)
    finally:  # a failed conversion leaves no partial folder behind
        shutil.rmtree(partial, ignore_errors=True)
    logger.info("converted %s -> %s", source, out_dir)
    return out_dir


def run_config(checkpoint: str, key: str, cls):
    """The stage config ``cls`` a checkpoint was trained with (``config[key]`` of its ``trainer_state.json``)."""
    path = os.path.join(checkpoint, "trainer_state.json")
    data = read_json_file(path, "trainer state") if os.path.isfile(path) else {}
    config = ((data if isinstance(data, dict) else {}).get("config") or {}).get(key)
    if not isinstance(config, dict):
        raise DataError(path, f"has no config.{key}: the frozen weights of a checkpoint that holds only the trained "
                              "ones are rebuilt from it")
    return from_dict(cls, config, path)


def run_folder(checkpoint: str, path: str | None, replacement: str | None, flag: str) -> str | None:
    """A folder named in a checkpoint's run config, for rebuilding its frozen base: ``replacement`` (the converter's
    ``flag``) when given; a relative path that is not here is looked up from the run's working directory (recorded
    as ``cwd`` in ``trainer_state.json``); a folder found nowhere is a DataError that names ``flag``."""
    if replacement:
        return replacement
    if not path or os.path.isdir(path):
        return path
    if not os.path.isabs(path):
        state = read_json_file(os.path.join(checkpoint, "trainer_state.json"), "trainer state")
        moved = os.path.join(state.get("cwd") or "", path) if isinstance(state, dict) else ""
        if moved and os.path.isdir(moved):
            return moved
    raise DataError(path, f"the frozen base of {checkpoint} was built from this folder, which is not here: give "
                          f"{flag} FOLDER where it lies on this machine")


def load_trained_part(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str | None):
    """Copy a checkpoint's trained weights ``state`` into ``model`` (built with its frozen weights from the run
    config): every key must exist with the model's shape, and every trainable parameter must be in ``state``."""
    expected = model.state_dict()
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(f"{k} {tuple(v.shape)} != {tuple(expected[k].shape)}" for k, v in state.items()
                    if k in expected and tuple(v.shape) != tuple(expected[k].shape))
    missing = sorted({n for n, p in model.named_parameters() if p.requires_grad} - set(state))
    problems = [f"{label}: {', '.join(items[:10])}" for label, items in
                (("trained weights missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)) if items]
    if problems:
        raise DataError(source, "weights do not fit the model; " + "; ".join(problems))
    model.load_state_dict(state, strict=False)
    return model


def build_and_load(model_class, config: dict, state: dict[str, torch.Tensor], source: str | None, base=None):
    """``model_class.from_config(config)`` on the meta device with ``state`` assigned (every key checked). A
    ``state`` with only the trained weights goes into ``base()`` instead: the model rebuilt from the run config."""
    from accelerate import init_empty_weights

    try:
        with init_empty_weights():
            model = model_class.from_config(config)
    except (TypeError, ValueError) as exc:
        raise DataError(source, f"config does not build {model_class.__name__} ({exc})") from None
    if base is not None and set(state) < set(model.state_dict()):
        logger.info("%s holds the trained weights only: the frozen ones come from the run config", source)
        model = base()
        if source:
            check_frozen_weights(model, source)
        return load_trained_part(model, state, source)
    check_state_keys(model, state, source)
    model.load_state_dict(state, strict=True, assign=True)
    return model


def pack_folder(src: str, dst: str, dtype: torch.dtype = torch.float16, skip: Sequence[str] = ()) -> str:
    """Copy a saved model folder ``src`` to ``dst`` (atomically) with every floating tensor of its
    ``.safetensors`` files cast to ``dtype`` (half the bytes in fp16; loaders cast back with ``torch_dtype``).
    Other files are copied unchanged; ``skip`` names top-level subfolders of ``src`` to leave out."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    if not os.path.isdir(src):
        raise DataError(src, "not a model folder")
    dst = dst.rstrip("/")
    partial = dst + ".partial"
    shutil.rmtree(partial, ignore_errors=True)

    def ignored(folder: str, names: list[str]) -> list[str]:
        top = os.path.abspath(folder) == os.path.abspath(src)
        return [n for n in names if n.endswith(".safetensors") or (top and n in skip)]

    shutil.copytree(src, partial, ignore=ignored)
    for root, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if d not in ignored(root, dirs)]
        for name in files:
            if not name.endswith(".safetensors"):
                continue
            path = os.path.join(root, name)
            with safe_open(path, "pt") as f:
                metadata = f.metadata()
                tensors = {k: f.get_tensor(k) for k in f.keys()}
            tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
            save_file(tensors, os.path.join(partial, os.path.relpath(path, src)), metadata=metadata)
    umask_permissions(partial)
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(partial, dst)
    logger.info("packed %s -> %s (%s)", src, dst, dtype)
    return dst
