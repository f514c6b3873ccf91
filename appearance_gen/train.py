"""Training the two ControlNet branches on single frames of HOI videos (shared ``data_tools.runtime.training`` loop).

The FLUX transformer, VAE, CLIP and T5 are frozen; the loss is FLUX's flow matching (predict ``noise - data``
at ``x_t = (1 - s) x_0 + s noise``) with the noise level ``s`` drawn logit-normal and shifted for the image
resolution as FLUX's sampler does (``timestep_sampling: uniform`` reproduces the reference's plain uniform draw).

    python -m appearance_gen.train --config configs/appearance/tiny.yaml --set data.root=/path/to/dataset
"""
from __future__ import annotations

import argparse
import logging
import math
import os
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from appearance_gen.components import build_components, build_controlnets, resolve_dtype
from appearance_gen.conditions import normals_from_depth, split_conditions, with_normals_from_depth
from appearance_gen.config import AppearanceConfig, load_appearance_config
from appearance_gen.generator import branch_inputs_from_maps
from appearance_gen.infer import write_grid
from appearance_gen.pipeline import AppearancePipeline, predict_velocity, shift_for_length
from data_tools.maps.bundle import ConditionBundle, to_model_range
from data_tools.io.cli import setup_logging
from data_tools.io.config import to_dict
from data_tools.errors import DataError, require_paths
from data_tools.datasets.hoi_dataset import HOISplit, split_dir
from data_tools.runtime.training import Trainer, TrainingSpec

logger = logging.getLogger(__name__)
TIMESTEP_SAMPLINGS = ("shift", "uniform")


class FrameDataset(Dataset):
    """One random frame per clip of a dataset split: ``{"pixel_values": (3, H, W) in [-1, 1],
    "conditions": {branch: (3k, H, W)}, "prompt": str}``.

    The frame is drawn from ``(seed, epoch, clip index)`` alone (the Trainer calls ``set_epoch``), so it is the same
    whatever process, loader worker or resume reads the clip, and differs from epoch to epoch.
    """

    def __init__(self, split: HOISplit, branches: dict[str, list[str]], normals_from_depth: bool = False,
                 seed: int = 0):
        self.split, self.branches, self.derive_normals = split, branches, normals_from_depth
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> dict:
        bundle = self.split[index]
        t = int(np.random.default_rng([self.seed, self.epoch, index]).integers(bundle.num_frames))
        maps = {name: bundle.conditions[name][t] for name in bundle.conditions}
        if self.derive_normals:
            maps["normal"] = normals_from_depth(maps["depth"])
        return {"pixel_values": to_model_range(bundle.video[t]),
                "conditions": branch_inputs_from_maps(self.branches, maps), "prompt": bundle.prompt}


def condition_names(branches: dict[str, list[str]]) -> list[str]:
    return list(dict.fromkeys(n for names in branches.values() for n in names))


def frame_dataset(cfg: AppearanceConfig, split: str) -> FrameDataset:
    """The ``FrameDataset`` of ``split`` of ``data.root`` at ``data.size``."""
    if not cfg.data.root:
        raise DataError(None, "data.root is not set (the processed dataset folder; --set data.root=...)")
    names, derive = split_conditions(cfg.data.root, split, condition_names(cfg.controlnet.branches),
                                     cfg.data.normal_source)
    hoi = HOISplit(cfg.data.root, split, conditions=names, num_frames=cfg.data.frames_per_clip,
                   size=tuple(cfg.data.size), resize_mode=cfg.data.resize_mode)
    return FrameDataset(hoi, {k: list(v) for k, v in cfg.controlnet.branches.items()}, derive, cfg.train.loop.seed)


def sample_sigmas(batch: int, seq_len: int, cfg, scheduler_config, generator=None) -> torch.Tensor:
    """Noise levels in (0, 1): logit-normal shifted by FLUX's resolution-dependent ``mu`` ("shift"), or uniform
    over 1000 levels as the reference ("uniform")."""
    if cfg.timestep_sampling == "uniform":
        grid = torch.linspace(1, 0, 1000)
        return grid[torch.randint(0, 1000, (batch,), generator=generator)]
    if cfg.timestep_sampling != "shift":
        raise DataError(None, f"train.timestep_sampling must be one of {TIMESTEP_SAMPLINGS}, got {cfg.timestep_sampling!r}")
    u = torch.sigmoid(cfg.logit_mean + cfg.logit_std * torch.randn(batch, generator=generator))
    mu = shift_for_length(seq_len, scheduler_config)
    return math.exp(mu) / (math.exp(mu) + (1 / u - 1))


class AppearanceTrainingSpec(TrainingSpec):
    """Frozen FLUX parts + trainable ``AppearanceControlNets``; flow-matching loss; validation grids."""

    def __init__(self, cfg: AppearanceConfig, val_bundles: Sequence[ConditionBundle] = ()):
        self.cfg = cfg
        self.components = build_components(cfg.model)
        self.controlnets = build_controlnets(cfg, self.components)
        self.controlnets.float().set_trainable().train()
        c = self.components
        self.pipeline = AppearancePipeline(c.scheduler, c.vae, c.text_encoder, c.tokenizer, c.text_encoder_2,
                                           c.tokenizer_2, c.transformer, self.controlnets)
        self.val_bundles = list(val_bundles)
        self.weight_dtype = resolve_dtype(cfg.model.dtype)

    def setup(self, accelerator) -> None:
        precision = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(accelerator.mixed_precision)
        self.weight_dtype = precision or self.weight_dtype
        self.components.to(accelerator.device, self.weight_dtype)
        if self.cfg.train.gradient_checkpointing:
            self.components.transformer.enable_gradient_checkpointing()
            for net in self.controlnets.controlnets.values():
                net.enable_gradient_checkpointing()

    def trainable_module(self) -> torch.nn.Module:
        return self.controlnets

    def collate(self, items: list[dict]) -> dict:
        return {"pixel_values": torch.stack([i["pixel_values"] for i in items]),
                "conditions": {k: torch.stack([i["conditions"][k] for i in items]) for k in items[0]["conditions"]},
                "prompt": [i["prompt"] for i in items]}

    def compute_loss(self, model, batch, accelerator) -> torch.Tensor:
        pipe, device, dtype = self.pipeline, accelerator.device, self.weight_dtype
        with torch.no_grad():
            embeds, pooled, text_ids = pipe.encode_prompt(batch["prompt"], prompt_2=None, device=device,
                                                          max_sequence_length=self.cfg.sampling.max_sequence_length)
            x0 = pipe.encode_latents(batch["pixel_values"].to(device)).to(dtype)
            b, _, h, w = batch["pixel_values"].shape
            m = pipe.image_multiple
            if h % m or w % m:
                raise DataError(None, f"training frames are {h}x{w}; data.size must be a multiple of {m}")
            img_ids = pipe._prepare_latent_image_ids(b, h // m, w // m, device, dtype)
        noise = torch.randn_like(x0)
        sigma = sample_sigmas(b, x0.shape[1], self.cfg.train, pipe.scheduler.config).to(device=device, dtype=dtype)
        s = sigma[:, None, None]
        noisy = (1 - s) * x0 + s * noise
        conditions = {k: v.to(device=device, dtype=dtype) for k, v in batch["conditions"].items()}
        pred = predict_velocity(pipe.transformer, model, noisy, sigma, embeds.to(dtype), pooled.to(dtype), text_ids,
                                img_ids, conditions, self.cfg.train.guidance_scale,
                                blocks_repeat=self.controlnets.config.blocks_repeat)
        return F.mse_loss(pred.float(), (noise - x0).float())

    def validate(self, model, accelerator, step: int, output_dir: str) -> None:
        if not self.val_bundles:
            return
        self.pipeline.controlnet = model
        model_dtype = next(model.parameters()).dtype
        sampling = self.cfg.sampling
        for i, bundle in enumerate(self.val_bundles):
            maps = {n: bundle.conditions[n][0] for n in condition_names(self.controlnets.branches)}
            inputs = {k: v[None].to(model_dtype) for k, v in branch_inputs_from_maps(self.controlnets.branches, maps).items()}
            image = self.pipeline(bundle.prompt, inputs, [torch.Generator("cpu").manual_seed(0)],
                                  num_inference_steps=self.cfg.train.val_steps, guidance_scale=sampling.guidance_scale,
                                  max_sequence_length=sampling.max_sequence_length)[0]
            columns = {"generated": image}
            if bundle.video is not None:
                columns["real"] = bundle.video[0]
            write_grid(os.path.join(output_dir, f"val_{i:02d}.png"), bundle, list(maps), columns)
        self.pipeline.controlnet = self.controlnets
        logger.info("validation images in %s", output_dir)


def validates(cfg: AppearanceConfig) -> bool:
    return bool(cfg.data.val_split and cfg.data.num_val_images and cfg.train.loop.validate_every)


def validation_bundles(cfg: AppearanceConfig) -> list[ConditionBundle]:
    """The first ``data.num_val_images`` clips of ``data.val_split`` (first frames), or none."""
    if not validates(cfg):
        return []
    names, derive = split_conditions(cfg.data.root, cfg.data.val_split, condition_names(cfg.controlnet.branches),
                                     cfg.data.normal_source)
    hoi = HOISplit(cfg.data.root, cfg.data.val_split, conditions=names, num_frames=1, size=tuple(cfg.data.size),
                   resize_mode=cfg.data.resize_mode)
    bundles = [hoi[i] for i in range(min(cfg.data.num_val_images, len(hoi)))]
    return [with_normals_from_depth(b) for b in bundles] if derive else bundles


def required_paths(cfg: AppearanceConfig) -> dict[str, str]:
    """``{config key: path}`` of everything a training run reads, checked before any weights are loaded."""
    if not cfg.data.root:
        raise DataError(None, "data.root is not set (the processed dataset folder; --set data.root=...)")
    paths = {f"data.split ({cfg.data.split} of data.root)": split_dir(cfg.data.root, cfg.data.split),
             "model.controlnet_path": cfg.model.controlnet_path}
    if cfg.model.source == "pretrained":
        paths["model.base_path"] = cfg.model.base_path
    if validates(cfg):
        paths[f"data.val_split ({cfg.data.val_split} of data.root)"] = split_dir(cfg.data.root, cfg.data.val_split)
    return {**{k: v for k, v in paths.items() if v}, **cfg.train.loop.required_paths()}


def train(cfg: AppearanceConfig) -> dict:
    """Run (or resume) training (every input path checked first); returns the Trainer summary."""
    require_paths(required_paths(cfg), "appearance training")
    dataset = frame_dataset(cfg, cfg.data.split)
    spec = AppearanceTrainingSpec(cfg, validation_bundles(cfg))
    # the branches' own config lets appearance_gen.convert_ckpt rebuild them from any checkpoint
    run_config = {"appearance": to_dict(cfg), "controlnet_config": dict(spec.controlnets.config)}
    return Trainer(spec, dataset, cfg.train.loop, cfg.train.optim, run_config=run_config).train()


def sample_dataset(folder: str, root: str, cfg: AppearanceConfig, num_frames: int = 9) -> str:
    """A processed dataset at ``root`` whose train and val splits hold one clip made from a condition video folder
    (e.g. the DexYCB sample), at ``data.size``: a smoke-test dataset for the tiny config. Returns ``root``."""
    from data_tools.datasets.hoi_dataset import write_bundle_dataset

    names = condition_names(cfg.controlnet.branches)
    bundle = ConditionBundle.from_video_folder(folder, names, num_frames=num_frames, size=tuple(cfg.data.size),
                                               require_video=True)
    bundle.prompt = bundle.prompt or "a hand grasps an object on a table"
    return write_bundle_dataset(root, bundle, "clip0", splits=("train", "val"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appearance_gen.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/appearance/tiny.yaml", help="appearance config YAML")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. data.root=/data/dexycb or train.loop.max_steps=10 (repeatable)")
    parser.add_argument("--sample-dataset", default=None, metavar="FOLDER",
                        help="build a one-clip dataset from this condition video folder (e.g. the DexYCB sample) under "
                             "<output_dir>/sample_dataset and train on it (smoke test)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    cfg = load_appearance_config(args.config, args.set)
    if args.sample_dataset:
        root = os.path.join(cfg.train.loop.output_dir, "sample_dataset")
        cfg.data.root = sample_dataset(args.sample_dataset, root, cfg)
        logger.info("one-clip dataset from %s in %s", args.sample_dataset, root)
    summary = train(cfg)
    logger.info("trained to step %d; weights in %s", summary["step"], summary["final_dir"])
    return 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
