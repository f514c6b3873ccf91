"""Tiny models of both stages trained on the procedural world (``data_tools.pose.toy_world``), and its ablation.

The stages load real weights from local diffusers folders; for this world those folders are made here (tiny
seeded text encoders and transformers plus VAEs trained briefly on the world's frames), then the stages train
with their normal entry points (``motion_gen.prepare``/``motion_gen.train``, ``appearance_gen.train``). The
helpers below also build the latent subsets of the condition ablation, the "hold the first frame" floor, the
ablation table and the appearance first-frame report. See ``docs/toy_world.md`` and ``scripts/toy_world_*.sh``.

    python -m sim2real.toy_world bases --config configs/toy_world/bases.yaml
    python -m sim2real.toy_world table --eval-dir outputs/toy_world/eval
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import logging
import math
import os
import shutil
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from data_tools.io.cli import positive_int
from data_tools.io.atomic import umask_permissions, write_json, write_text
from data_tools.errors import DataError, require_file
from data_tools.metrics.regions import (PixelSegmenter, fit_segmenter, load_segmenter, paired_difference, region_iou,
                                        region_labels, region_psnr, save_segmenter, segmentation_report, split_frames)
from data_tools.runtime.training import LoopConfig, OptimizerConfig, Trainer, TrainingSpec

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class VAETrainConfig:
    """Brief VAE training on the world's clips (videos and condition maps mixed)."""

    num_frames: int = 9          # frames per sample (CogVideoX VAE); the image VAE draws one of them
    size: list[int] = dataclasses.field(default_factory=lambda: [96, 144])
    crop: list[int] | None = None  # train on random crops of this size (the VAEs are convolutional; much cheaper)
    kl_weight: float = 1e-6
    video_fraction: float = 0.5  # share of samples that are "real" video (the rest: a random condition map)
    loop: LoopConfig = dataclasses.field(default_factory=LoopConfig)
    optim: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)


@dataclasses.dataclass
class BasesConfig:
    """Sizes of the toy "pretrained" components of both stages (YAML: ``configs/toy_world/bases.yaml``)."""

    dataset: str = "outputs/toy_world/processed"
    out: str = "assets/toy_world"
    seed: int = 0
    motion_transformer: dict = dataclasses.field(default_factory=dict)   # CogVideoXTransformer3DModel kwargs
    motion_vae: dict = dataclasses.field(default_factory=dict)           # AutoencoderKLCogVideoX kwargs
    appearance_transformer: dict = dataclasses.field(default_factory=dict)  # FluxTransformer2DModel kwargs
    appearance_vae: dict = dataclasses.field(default_factory=dict)          # AutoencoderKL kwargs
    t5: dict = dataclasses.field(default_factory=dict)                  # T5Config kwargs (ByT5 tokenizer)
    clip: dict = dataclasses.field(default_factory=dict)                # CLIPTextConfig kwargs (byte tokenizer)
    clip_max_length: int = 32
    motion_vae_train: VAETrainConfig = dataclasses.field(default_factory=VAETrainConfig)
    appearance_vae_train: VAETrainConfig = dataclasses.field(default_factory=VAETrainConfig)
    decoder_finetune: VAETrainConfig = dataclasses.field(default_factory=VAETrainConfig)  # finetune-decoder


class ClipFrames(torch.utils.data.Dataset):
    """Clips of a split as model-range tensors: ``(3, T, H, W)`` (video VAE) or ``(3, H, W)`` (image VAE); each
    item is the real video or, with probability ``1 - video_fraction``, one of its condition maps."""

    def __init__(self, root: str, split: str, num_frames: int, size, video_fraction: float, image: bool,
                 seed: int = 0, crop=None):
        from data_tools.datasets.hoi_dataset import HOISplit

        self.split = HOISplit(root, split, ["hand_keypoints", "depth", "seg_mask"], num_frames, tuple(size))
        self.video_fraction, self.image, self.crop = video_fraction, image, crop
        self.rng = np.random.default_rng(seed)
        self.cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.split)

    def streams(self, index: int) -> np.ndarray:
        """``(4, T, H, W, 3)`` uint8: video, keypoints, depth, seg mask (cached)."""
        if index not in self.cache:
            b = self.split[index]
            self.cache[index] = np.stack([b.video] + [b.conditions[n] for n in ("hand_keypoints", "depth", "seg_mask")])
        return self.cache[index]

    def __getitem__(self, index: int) -> torch.Tensor:
        from data_tools.maps.bundle import to_model_range

        streams = self.streams(index)
        which = 0 if self.rng.random() < self.video_fraction else int(self.rng.integers(1, len(streams)))
        frames = streams[which]
        if self.crop:
            h, w = self.crop
            top = int(self.rng.integers(0, frames.shape[1] - h + 1))
            left = int(self.rng.integers(0, frames.shape[2] - w + 1))
            frames = frames[:, top:top + h, left:left + w]
        if self.image:
            return to_model_range(frames[int(self.rng.integers(len(frames)))])
        return to_model_range(frames).permute(1, 0, 2, 3)  # (3, T, H, W)


class VAESpec(TrainingSpec):
    """Reconstruction (MSE) + ``kl_weight`` KL of a diffusers VAE (single process); ``decoder_only`` freezes the
    encoder (latents already computed with it stay valid)."""

    def __init__(self, vae, kl_weight: float, decoder_only: bool = False):
        self.vae, self.kl_weight, self.decoder_only = vae, kl_weight, decoder_only

    def trainable_module(self) -> torch.nn.Module:
        self.vae.train().requires_grad_(True)
        if self.decoder_only:
            self.vae.encoder.requires_grad_(False)
            if getattr(self.vae, "quant_conv", None) is not None:
                self.vae.quant_conv.requires_grad_(False)
        return self.vae

    def compute_loss(self, model, batch, accelerator) -> torch.Tensor:
        x = batch.to(accelerator.device)
        vae = accelerator.unwrap_model(model)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        return torch.nn.functional.mse_loss(recon, x) + self.kl_weight * posterior.kl().mean()


def train_vae(vae, dataset: ClipFrames, cfg: VAETrainConfig, decoder_only: bool = False) -> dict:
    """Train ``vae`` in place with the shared ``Trainer``; returns its summary."""
    return Trainer(VAESpec(vae, cfg.kl_weight, decoder_only), dataset, cfg.loop, cfg.optim,
                   {"vae_train": dataclasses.asdict(cfg), "decoder_only": decoder_only}).train()


def finetune_decoder(vae_dir: str, kind: str, dataset: str, cfg: VAETrainConfig) -> dict:
    """Train the decoder of a saved toy VAE further (encoder, latents and scaling factors unchanged) and save it
    back; returns the held-out reconstruction PSNR before and after."""
    from diffusers import AutoencoderKL, AutoencoderKLCogVideoX

    image = kind == "appearance"
    vae = (AutoencoderKL if image else AutoencoderKLCogVideoX).from_pretrained(vae_dir)
    before = vae_psnr(vae.eval(), dataset, "test", cfg.num_frames, cfg.size, image)
    data = ClipFrames(dataset, "train", cfg.num_frames, cfg.size, cfg.video_fraction, image, 0, cfg.crop)
    summary = train_vae(vae, data, cfg, decoder_only=True)
    after = vae_psnr(vae.eval(), dataset, "test", cfg.num_frames, cfg.size, image)
    vae.save_pretrained(vae_dir)
    umask_permissions(vae_dir)
    report = {f"{kind}_decoder_psnr_before": before, f"{kind}_decoder_psnr_after": after,
              f"{kind}_decoder_steps": summary["step"]}
    logger.info("%s", report)
    return report


@torch.no_grad()
def reconstruct(vae, x: torch.Tensor) -> torch.Tensor:
    """Posterior-mean reconstruction of model-range frames (video ``(B,3,T,H,W)`` or images ``(B,3,H,W)``)."""
    return vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)


@torch.no_grad()
def vae_psnr(vae, root: str, split: str, num_frames: int, size, image: bool, limit: int = 8) -> dict[str, float]:
    """Reconstruction PSNR (dB) of real videos of ``split`` (``image``: frame by frame): mean over clips of the
    whole-frame PSNR and of the hand / object regions' (the conditions' seg mask)."""
    from data_tools.maps.bundle import from_model_range, to_model_range
    from data_tools.datasets.hoi_dataset import HOISplit

    split_ds = HOISplit(root, split, ["seg_mask"], num_frames, tuple(size))
    if not len(split_ds):
        raise DataError(root, f"split {split!r} has no clips to measure the VAE on")
    values = []
    for i in range(min(limit, len(split_ds))):
        bundle = split_ds[i]
        video = bundle.video
        x = to_model_range(video)  # (T, 3, H, W)
        rec = reconstruct(vae, x) if image else reconstruct(vae, x.permute(1, 0, 2, 3)[None])[0].permute(1, 0, 2, 3)
        values.append(region_psnr(from_model_range(rec[: len(video)]), video,
                                  region_labels(bundle.conditions["seg_mask"])))
    return {k: float(np.mean([v[k] for v in values if k in v])) for k in ("frame", "hand", "object")}


@torch.no_grad()
def latent_statistics(vae, dataset: ClipFrames, limit: int = 16) -> tuple[float, float]:
    """Mean and standard deviation of posterior-mean latents over real videos (for the scaling factors)."""
    from data_tools.maps.bundle import to_model_range

    zs = []
    for i in range(min(limit, len(dataset))):
        frames = to_model_range(dataset.streams(i)[0])
        x = frames if dataset.image else frames.permute(1, 0, 2, 3)[None]
        zs.append(vae.encode(x).latent_dist.mode().flatten())  # full frames (ClipFrames.streams is uncropped)
    z = torch.cat(zs)
    return float(z.mean()), float(z.std())


def _text_components(cfg: BasesConfig):
    from transformers import ByT5Tokenizer, CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from appearance_gen.components import byte_clip_tokenizer

    torch.manual_seed(cfg.seed)
    t5_tok = ByT5Tokenizer()
    t5 = T5EncoderModel(T5Config(vocab_size=len(t5_tok), decoder_start_token_id=0, **cfg.t5)).eval()
    clip_tok = byte_clip_tokenizer(cfg.clip_max_length)
    clip = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(clip_tok), bos_token_id=clip_tok.bos_token_id, eos_token_id=clip_tok.eos_token_id,
        pad_token_id=clip_tok.pad_token_id, max_position_embeddings=cfg.clip_max_length, **cfg.clip)).eval()
    return t5_tok, t5, clip_tok, clip


BASE_KINDS = ("motion", "appearance")


def build_bases(cfg: BasesConfig, train: bool = True, kinds: Sequence[str] = BASE_KINDS,
                transformers_only: bool = False) -> dict:
    """Write ``<out>/motion_base`` (CogVideoX-I2V layout) and/or ``<out>/appearance_base`` (FLUX layout), their
    VAEs trained on the world's ``train`` split (``train=False``: random VAEs). The text encoders are seeded, so
    the two folders hold the same T5 whether built together or by two processes (``kinds``) at once. Returns the
    measured reconstruction PSNRs on the ``test`` split, random vs trained, merged into ``<out>/vae_report.json``.
    ``transformers_only``: write just the seeded random transformers into existing folders (git does not hold
    them); the VAEs, text encoders and report stay as they are."""
    from diffusers import AutoencoderKL, AutoencoderKLCogVideoX, FlowMatchEulerDiscreteScheduler
    from diffusers import CogVideoXDPMScheduler, CogVideoXTransformer3DModel, FluxTransformer2DModel

    from motion_gen.components import COGVIDEOX_SCHEDULER

    t5_tok, t5, clip_tok, clip = _text_components(cfg)
    report = {}
    vaes = {}
    for kind, cls, kwargs, tcfg in (("motion", AutoencoderKLCogVideoX, cfg.motion_vae, cfg.motion_vae_train),
                                    ("appearance", AutoencoderKL, cfg.appearance_vae, cfg.appearance_vae_train)):
        if kind not in kinds or transformers_only:
            continue
        image = kind == "appearance"
        torch.manual_seed(cfg.seed + 1)
        vae = cls(**kwargs)
        frames = tcfg.num_frames
        report[f"{kind}_random_psnr"] = vae_psnr(vae.eval(), cfg.dataset, "test", frames, tcfg.size, image)
        if train:
            data = ClipFrames(cfg.dataset, "train", frames, tcfg.size, tcfg.video_fraction, image, cfg.seed, tcfg.crop)
            summary = train_vae(vae, data, tcfg)
            report[f"{kind}_train_steps"] = summary["step"]
            vae.eval()
            mean, std = latent_statistics(vae, data)
            factors = {"scaling_factor": 1.0 / std}
            if image:
                factors["shift_factor"] = mean
            vae.register_to_config(**factors)
            report[f"{kind}_trained_psnr"] = vae_psnr(vae, cfg.dataset, "test", frames, tcfg.size, image)
            report[f"{kind}_latent_factors"] = factors
        vaes[kind] = vae.eval()
        logger.info("%s VAE: %s", kind, {k: v for k, v in report.items() if k.startswith(kind)})
    folders = {}
    if "motion" in kinds:
        torch.manual_seed(cfg.seed + 2)
        folders["motion_base"] = {"transformer": CogVideoXTransformer3DModel(**cfg.motion_transformer)}
        if not transformers_only:
            folders["motion_base"].update(vae=vaes["motion"], text_encoder=t5, tokenizer=t5_tok,
                                          scheduler=CogVideoXDPMScheduler(**COGVIDEOX_SCHEDULER))
    if "appearance" in kinds:
        torch.manual_seed(cfg.seed + 3)
        folders["appearance_base"] = {"transformer": FluxTransformer2DModel(**cfg.appearance_transformer)}
        if not transformers_only:
            folders["appearance_base"].update(
                vae=vaes["appearance"], text_encoder=clip, tokenizer=clip_tok, text_encoder_2=t5, tokenizer_2=t5_tok,
                scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                                                          max_shift=1.15, base_image_seq_len=256,
                                                          max_image_seq_len=4096))
    for folder, parts in folders.items():
        for sub, part in parts.items():
            part.save_pretrained(os.path.join(cfg.out, folder, sub))
            umask_permissions(os.path.join(cfg.out, folder, sub))
    if transformers_only:
        return report
    path = os.path.join(cfg.out, "vae_report.json")
    previous = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            previous = {k: v for k, v in json.load(f).items() if not k.startswith(tuple(kinds))}
    write_json(path, {**previous, **report})
    if "motion" in kinds:  # a decoder fine-tune's checkpoints belong to the VAE it started from: never resume them
        shutil.rmtree(cfg.decoder_finetune.loop.output_dir, ignore_errors=True)
    return report


def transformer_step_times(cfg: BasesConfig, batch: int = 8, repeats: int = 5) -> dict[str, dict]:
    """Seconds per training step (forward + backward + AdamW, random inputs, one warm-up) of the bases' random
    transformers on the frame size the motion transformer is configured for (its ``sample_height/width`` latents,
    64x96 frames here): the cost side of choosing their width and prompt length."""
    import time

    from diffusers import CogVideoXTransformer3DModel, FluxTransformer2DModel
    from diffusers.models.embeddings import get_3d_rotary_pos_embed

    def timed(model, inputs: dict) -> dict:
        optimizer = torch.optim.AdamW(model.parameters(), 1e-4)

        def step():
            model(**inputs).sample.pow(2).mean().backward()
            optimizer.step()
            optimizer.zero_grad()

        step()
        start = time.perf_counter()
        for _ in range(repeats):
            step()
        return {"parameters": sum(p.numel() for p in model.parameters()),
                "seconds_per_step": (time.perf_counter() - start) / repeats}

    m = CogVideoXTransformer3DModel(**cfg.motion_transformer)
    c = m.config
    h, w = c.sample_height, c.sample_width  # latent size; the frame is this times the motion VAE's downscale
    t = (c.sample_frames - 1) // cfg.motion_vae.get("temporal_compression_ratio", 4) + 1
    grid = (h // c.patch_size, w // c.patch_size)
    rotary = get_3d_rotary_pos_embed(c.attention_head_dim, ((0, 0), grid), grid, t) \
        if c.use_rotary_positional_embeddings else None
    motion = timed(m, {"hidden_states": torch.randn(batch, t, c.in_channels, h, w),
                       "encoder_hidden_states": torch.randn(batch, c.max_text_seq_length, c.text_embed_dim),
                       "timestep": torch.randint(0, 1000, (batch,)), "image_rotary_emb": rotary})
    f = FluxTransformer2DModel(**cfg.appearance_transformer)
    scale = 2 ** (len(cfg.motion_vae["block_out_channels"]) - len(cfg.appearance_vae["block_out_channels"]))
    tokens, text = (h * scale // 2) * (w * scale // 2), cfg.clip_max_length  # FLUX packs 2x2 latents a token
    appearance = timed(f, {"hidden_states": torch.randn(batch, tokens, f.config.in_channels),
                           "encoder_hidden_states": torch.randn(batch, text, f.config.joint_attention_dim),
                           "pooled_projections": torch.randn(batch, f.config.pooled_projection_dim),
                           "timestep": torch.rand(batch), "guidance": torch.full((batch,), 3.5),
                           "img_ids": torch.zeros(tokens, 3), "txt_ids": torch.zeros(text, 3)})
    return {"motion": motion, "appearance": appearance}


def subset_latents(source: str, dest: str, condition_names: Sequence[str]) -> str:
    """A latent store for a subset of the conditions of ``source`` (a ``motion_gen.prepare`` store made with
    more conditions): the sample files are hard-linked (the extra condition tensors are simply not read) and
    ``store.json`` names the subset. Saves re-encoding the same clips once per condition set."""
    from data_tools.runtime.latent_store import FORMAT, INDEX_FILE, SAMPLES_DIR, STORE_FILE, read_meta

    meta = read_meta(source)
    missing = [n for n in condition_names if n not in meta["condition_names"]]
    if missing:
        raise DataError(source, f"store has no latents for {missing} (it holds {meta['condition_names']})")
    os.makedirs(os.path.join(dest, SAMPLES_DIR), exist_ok=True)
    for name in os.listdir(os.path.join(source, SAMPLES_DIR)):
        target = os.path.join(dest, SAMPLES_DIR, name)
        if not os.path.exists(target):
            os.link(os.path.join(source, SAMPLES_DIR, name), target)
    with open(os.path.join(source, INDEX_FILE), encoding="utf-8") as f:
        write_text(os.path.join(dest, INDEX_FILE), f.read())
    meta = {**meta, "condition_names": list(condition_names), "subset_of": os.path.abspath(source)}
    write_json(os.path.join(dest, STORE_FILE), {"format": FORMAT, "meta": meta})
    return dest


def joint_base(init_base: str, base_out: str) -> str:
    """A FLUX base folder ``base_out`` whose components are relative symlinks to ``init_base``'s, except a copy of
    its transformer (which the joint training replaces)."""
    os.makedirs(base_out, exist_ok=True)
    for name in sorted(os.listdir(init_base)):
        target = os.path.join(base_out, name)
        if name == "transformer":
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(os.path.join(init_base, name), target)
        elif not os.path.lexists(target):
            os.symlink(os.path.relpath(os.path.join(init_base, name), base_out), target)
    return base_out


def pretrain_appearance(config_path: str, overrides: Sequence[str] = (), base_out: str | None = None,
                        init_base: str | None = None) -> dict:
    """Train the toy FLUX base transformer jointly with the two ControlNet branches (the normal appearance
    training spec and loss, with the base unfrozen): a frozen *random* base cannot be steered by the branches
    (measured, docs/benchmarks.md), a real FLUX is pretrained. With ``init_base``, ``base_out`` is first made
    from it (``joint_base``) and used as ``model.base_path``. Writes the branches to ``<output_dir>/final``, the
    transformer to ``<output_dir>/final/transformer`` and into ``base_out``/transformer when given."""
    from appearance_gen.config import load_appearance_config
    from appearance_gen.train import AppearanceTrainingSpec, frame_dataset, validation_bundles
    from data_tools.io.config import to_dict

    class JointSpec(AppearanceTrainingSpec):
        def __init__(self, cfg, val_bundles):
            super().__init__(cfg, val_bundles)
            self.components.transformer.float().requires_grad_(True).train()
            self.joint = torch.nn.ModuleDict({"controlnets": self.controlnets,
                                              "transformer": self.components.transformer})

        def trainable_module(self):
            return self.joint

        def compute_loss(self, model, batch, accelerator):
            return super().compute_loss(model["controlnets"], batch, accelerator)

        def validate(self, model, accelerator, step, output_dir):
            super().validate(model["controlnets"], accelerator, step, output_dir)

        def save_weights(self, model, output_dir):
            model["controlnets"].save_pretrained(output_dir, safe_serialization=True)
            model["transformer"].save_pretrained(os.path.join(output_dir, "transformer"), safe_serialization=True)

    overrides = list(overrides)
    if init_base and base_out:
        overrides.append(f"model.base_path={joint_base(init_base, base_out)}")
    cfg = load_appearance_config(config_path, overrides)
    summary = Trainer(JointSpec(cfg, validation_bundles(cfg)), frame_dataset(cfg, cfg.data.split), cfg.train.loop,
                      cfg.train.optim, {"appearance": to_dict(cfg), "joint_base_training": True}).train()
    if base_out:
        target = os.path.join(base_out, "transformer")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(os.path.join(summary["final_dir"], "transformer"), target)
    return summary


def evaluated_clips(eval_dir: str) -> dict:
    """``{root, split, limit, num_frames, size}`` of the clips the runs of an evaluation folder generated (from the
    first ``run.json`` found; empty when there is none)."""
    for run_json in sorted(glob.glob(os.path.join(eval_dir, "*", "run.json"))):
        with open(run_json, encoding="utf-8") as f:
            run = json.load(f)
        if "dataset" in run:
            data = run["dataset"]
            return {"root": data["root"], "split": data["split"], "limit": data.get("limit"),
                    "num_frames": run["num_frames"], "size": tuple(run["size"])}
    return {}


def copy_baseline(eval_dir: str, root: str, split: str, num_frames: int, size, fps: float = 15,
                  limit: int | None = None) -> str:
    """A run folder ``copy_first_frame`` in ``motion_gen.evaluate``'s format whose "generated" videos hold the
    ground-truth first frame still: the floor any motion model must beat (the first ``limit`` clips)."""
    from data_tools.datasets.hoi_dataset import HOISplit
    from data_tools.io.video_io import write_video

    ds = HOISplit(root, split, [], num_frames, tuple(size))
    count = len(ds) if limit is None else min(limit, len(ds))  # the prefix motion_gen.evaluate takes
    run_dir = os.path.join(eval_dir, "copy_first_frame")
    write_json(os.path.join(run_dir, "run.json"), {"label": "copy_first_frame", "conditions": [],
                                                   "num_samples": count, "size": list(size), "num_frames": num_frames})
    for i in range(count):
        bundle = ds[i]
        stem = os.path.join(run_dir, "videos", f"{i:05d}")
        write_video(stem + ".mp4", np.repeat(bundle.first_frame[None], num_frames, 0), fps=fps)
        write_json(stem + ".json", {"index": i, "generated": f"videos/{i:05d}.mp4", "conditions": [],
                                    "name": ds.clip_name(i), "reference": os.path.abspath(ds.path("video", i)),
                                    "clip_dir": os.path.abspath(os.path.join(ds.root, ds.clip_name(i))),
                                    "resize_mode": "crop"})
    return run_dir


def ablation_markdown(eval_dir: str) -> str:
    """The ablation table of an evaluation folder: ``results.json`` (PSNR / SSIM) with ``seg_iou.json`` (mask IoU),
    then, where ``seg_iou.json`` has them, the PSNR of each ground-truth region over frames 1+."""
    from data_tools.maps.bundle import CONDITION_NAMES

    with open(os.path.join(eval_dir, "results.json"), encoding="utf-8") as f:
        rows = json.load(f)["runs"]
    seg_path = os.path.join(eval_dir, "seg_iou.json")
    seg = {}
    if os.path.isfile(seg_path):
        with open(seg_path, encoding="utf-8") as f:
            seg = {r["label"]: r for r in json.load(f)}
    for r in rows:  # what the model read (a run may load a condition only to give the clip its shape)
        run_json = os.path.join(eval_dir, r["label"], "run.json")
        if os.path.isfile(run_json):
            with open(run_json, encoding="utf-8") as f:
                r["conditions"] = json.load(f).get("generator_conditions", r.get("conditions", []))
    names = [c for c in CONDITION_NAMES if any(c in r.get("conditions", []) for r in rows)]
    fmt = lambda v, d: "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{d}f}"  # noqa: E731
    header = ["Run", *names, "PSNR ↑", "PSNR 1+ ↑", "SSIM ↑", "IoU hand ↑", "IoU object ↑", "IoU fg ↑", "N"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    extra = [r for label, r in seg.items() if label not in {row["label"] for row in rows}]
    for r in rows + extra:
        iou_row = seg.get(r["label"], {})
        cells = [r["label"], *["✓" if c in r.get("conditions", []) else "" for c in names],
                 *[fmt(r.get(k), 2) for k in ("psnr", "psnr_after_first")], fmt(r.get("ssim"), 3),
                 *[fmt(iou_row.get(f"iou_{k}"), 3) for k in ("hand", "object", "foreground")],
                 str(r.get("num_samples", ""))]
        lines.append("| " + " | ".join(cells) + " |")
    regional = [r for r in seg.values() if any(k.startswith("psnr_") for k in r)]
    if regional:  # where the error is: the ground truth's regions, frames 1+
        lines += ["", "PSNR (dB) by ground-truth region, frames 1+ (error pooled over a clip's frames):", "",
                  "| Run | background ↑ | hand ↑ | object ↑ |", "|---|---|---|---|"]
        lines += [f"| {r['label']} | " + " | ".join(fmt(r.get(f"psnr_{k}"), 2) for k in ("background", "hand", "object"))
                  + " |" for r in regional]
    return "\n".join(lines) + "\n"


def appearance_report(runs: dict[str, tuple[str, Sequence[str]]], root: str, split: str, size,
                      segmenter: PixelSegmenter, seed: int = 0, limit: int | None = None) -> list[dict]:
    """First frames of the appearance stage on a split: PSNR / SSIM against the real first frame and region IoU
    of the generated frame against its seg mask, for each ``{label: (config path, overrides)}`` run."""
    from appearance_gen.generator import AppearanceGenerator
    from data_tools.datasets.hoi_dataset import HOISplit
    from data_tools.metrics.image_metrics import psnr, ssim

    rows = []
    for label, (config, overrides) in runs.items():
        gen = AppearanceGenerator.load(config, list(overrides), device="cpu")
        ds = HOISplit(root, split, gen.condition_names, 1, tuple(size))
        per = []
        for i in tqdm(range(len(ds) if limit is None else min(limit, len(ds))), desc=f"appearance [{label}]"):
            bundle = ds[i]
            image = gen.generate(bundle, [seed])[0]
            real = bundle.video[0]
            score = region_iou(segmenter.predict(image[None]), region_labels(bundle.conditions["seg_mask"][:1]))
            per.append({"psnr": float(psnr(image, real)), "ssim": float(ssim(image, real)), **score})
        rows.append({"label": label, "conditions": gen.condition_names, "num_samples": len(per),
                     **{k: float(np.nanmean([p[k] for p in per])) for k in per[0]}})
    return rows


def demo_iou(out_dir: str, segmenter: PixelSegmenter) -> list[dict]:
    """Region IoU (segmenter vs the sequence's own seg-mask condition) of each ``sim2real.run`` output under
    ``out_dir`` (folders holding ``manifest.json``, e.g. ``scripts/demo.sh``'s): first frame and whole video."""
    from data_tools.io.video_io import read_image, read_video

    rows = []
    for folder, _, files in sorted(os.walk(out_dir)):
        if "manifest.json" not in files:
            continue
        seg_path = require_file(os.path.join(folder, "conditions", "seg_mask.mp4"), "seg-mask condition")
        video = read_video(require_file(os.path.join(folder, "video.mp4"), "generated video"))
        seg = region_labels(read_video(seg_path))
        first = read_image(require_file(os.path.join(folder, "first_frame.png"), "first frame"))
        if seg.shape[1:] != video.shape[1:3] or first.shape[:2] != video.shape[1:3] or len(seg) < len(video):
            raise DataError(folder, f"sizes differ: seg mask {seg.shape}, video {video.shape}, first frame {first.shape}")
        pick = lambda score: {k: score[k] for k in ("iou_hand", "iou_object")}  # noqa: E731
        rows.append({"name": os.path.basename(folder), "frames": len(video), "size": list(video.shape[1:3]),
                     "first_frame": pick(region_iou(segmenter.predict(first[None]), seg[:1])),
                     "video": pick(region_iou(segmenter.predict(video), seg[: len(video)]))})
    if not rows:
        raise DataError(out_dir, "no sim2real output (manifest.json) inside")
    return rows


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from data_tools.datasets.runner import parse_size

    parser = argparse.ArgumentParser(prog="python -m sim2real.toy_world", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    bases = sub.add_parser("bases", help="write the toy 'pretrained' folders of both stages (VAEs trained here)")
    bases.add_argument("--config", default="configs/toy_world/bases.yaml")
    bases.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    bases.add_argument("--random-vae", action="store_true", help="keep the VAEs random (no training)")
    bases.add_argument("--only", choices=BASE_KINDS, default=None,
                       help="build one stage's folder (two processes can build both at once)")
    bases.add_argument("--transformers-only", action="store_true",
                       help="write only the seeded random transformers (not in git) into the existing folders")
    bases.add_argument("-v", "--verbose", action="store_true")
    fd = sub.add_parser("finetune-decoder", help="train a saved toy VAE's decoder further (latents stay valid)")
    fd.add_argument("--config", default="configs/toy_world/bases.yaml")
    fd.add_argument("--kind", choices=("motion", "appearance"), default="motion")
    fd.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    fd.add_argument("--again", action="store_true", help="fine-tune even if the report says it was done")
    fd.add_argument("-v", "--verbose", action="store_true")
    fit = sub.add_parser("fit-segmenter", help="fit the background/hand/object pixel classifier on real frames")
    fit.add_argument("--root", required=True, help="processed toy-world dataset")
    fit.add_argument("--out", default="assets/toy_world/segmenter.safetensors")
    fit.add_argument("--size", type=parse_size, default=(96, 144), metavar="HxW", help="default 96x144")
    fit.add_argument("--steps", type=positive_int, default=600)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("-v", "--verbose", action="store_true")
    sg = sub.add_parser("seg-iou", help="mask IoU of generated hand/object regions vs the conditioning seg mask")
    sg.add_argument("runs", nargs="+", help="run folders of motion_gen.evaluate (holding run.json)")
    sg.add_argument("--segmenter", default="assets/toy_world/segmenter.safetensors")
    sg.add_argument("--out", default=None, help="json output (default: <first run>/../seg_iou.json)")
    sg.add_argument("-v", "--verbose", action="store_true")
    pd = sub.add_parser("paired", help="run A minus run B per sample of a seg_iou.json (mean, wins, bootstrap 95%% "
                                       "interval), one JSON line")
    pd.add_argument("a", help="run label A")
    pd.add_argument("b", help="run label B")
    pd.add_argument("--seg-iou", default="outputs/toy_world/eval/seg_iou.json", help="written by seg-iou")
    pd.add_argument("--key", default="iou_hand", help="iou_hand, iou_object, iou_foreground, psnr_hand, ...")
    pd.add_argument("-v", "--verbose", action="store_true")
    cb = sub.add_parser("copy-baseline", help="the 'hold the first frame' run folder of an evaluation")
    cb.add_argument("--eval-dir", default="outputs/toy_world/eval")
    # each default: what the evaluation folder's runs generated (run.json), else the toy world's test split
    cb.add_argument("--root", help="default: the runs' dataset root, else outputs/toy_world/processed")
    cb.add_argument("--split", help="default: the runs' split, else test")
    cb.add_argument("--limit", type=int, help="only the first N clips (default: the runs' dataset.limit)")
    cb.add_argument("--num-frames", type=positive_int, help="default: the runs', else 9")
    cb.add_argument("--size", type=parse_size, metavar="HxW", help="default: the runs', else 64x96")
    cb.add_argument("-v", "--verbose", action="store_true")
    tb = sub.add_parser("table", help="the ablation table (markdown) of an evaluation folder")
    tb.add_argument("--eval-dir", default="outputs/toy_world/eval")
    tb.add_argument("-v", "--verbose", action="store_true")
    pa = sub.add_parser("pretrain-appearance", help="train the toy FLUX base jointly with the ControlNet branches")
    pa.add_argument("--config", default="configs/appearance/toy_world.yaml")
    pa.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    pa.add_argument("--base-out", default=None, help="FLUX base folder whose transformer/ gets the trained one")
    pa.add_argument("--init-base", default=None, help="make --base-out from this base (random toy FLUX) first")
    pa.add_argument("-v", "--verbose", action="store_true")
    ap = sub.add_parser("appearance-eval", help="first frames of the appearance stage on the held-out split: "
                                                 "PSNR/SSIM vs the real frame, region IoU vs the seg mask")
    ap.add_argument("--config", nargs="+", default=["configs/appearance/toy_world.yaml",
                                                    "configs/appearance/toy_world_joint.yaml"],
                    help="appearance configs, one row each (plus the first one with untrained branches)")
    ap.add_argument("--root", default="outputs/toy_world/processed")
    ap.add_argument("--split", default="test")
    ap.add_argument("--size", type=parse_size, default=(64, 96), metavar="HxW")
    ap.add_argument("--segmenter", default="assets/toy_world/segmenter.safetensors")
    ap.add_argument("--out", default="outputs/toy_world/eval_appearance.json")
    ap.add_argument("-v", "--verbose", action="store_true")
    ss = sub.add_parser("subset-latents", help="a motion latent store for a subset of a store's conditions")
    ss.add_argument("source", help="store written by motion_gen.prepare")
    ss.add_argument("dest")
    ss.add_argument("--conditions", nargs="*", default=[], help="condition names to keep (none: no conditions)")
    ss.add_argument("-v", "--verbose", action="store_true")
    di = sub.add_parser("demo-iou", help="hand/object IoU of a demo's first frame and video vs its own seg mask "
                                         "(one JSON line per sequence)")
    di.add_argument("out_dir", help="demo output folder (scripts/demo.sh: outputs/demo)")
    di.add_argument("--segmenter", default="assets/toy_world/segmenter.safetensors")
    di.add_argument("-v", "--verbose", action="store_true")
    st = sub.add_parser("step-times", help="seconds per training step of the bases' transformers (random inputs)")
    st.add_argument("--config", default="configs/toy_world/bases.yaml")
    st.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides (other sizes)")
    st.add_argument("--batch", type=int, default=8)
    st.add_argument("--repeats", type=int, default=5)
    st.add_argument("-v", "--verbose", action="store_true")
    pk = sub.add_parser("pack", help="copy a trained model folder with its weights in fp16 (the committed assets)")
    pk.add_argument("src", help="saved model folder (config.json + safetensors)")
    pk.add_argument("dst")
    pk.add_argument("--drop", nargs="*", default=[], help="subfolders of src to leave out")
    pk.add_argument("-v", "--verbose", action="store_true")
    vp = sub.add_parser("vae-psnr", help="reconstruction PSNR (frame, hand, object) of saved toy VAEs")
    vp.add_argument("vaes", nargs="+", help="VAE folders (a base's vae/)")
    vp.add_argument("--kind", choices=("motion", "appearance"), default="motion")
    vp.add_argument("--root", default="outputs/toy_world/processed")
    vp.add_argument("--split", default="test")
    vp.add_argument("--limit", type=int, default=24, help="clips (default 24)")
    vp.add_argument("--num-frames", type=positive_int, default=9)
    vp.add_argument("--size", type=parse_size, default=(64, 96), metavar="HxW")
    vp.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from data_tools.io.cli import setup_logging
    from data_tools.io.config import load_config

    args = parse_args(argv)
    setup_logging(args.verbose)
    if args.command == "bases":
        cfg = load_config(BasesConfig, args.config, args.set)
        kinds = [args.only] if args.only else BASE_KINDS
        report = build_bases(cfg, train=not args.random_vae, kinds=kinds, transformers_only=args.transformers_only)
        if args.transformers_only:
            logger.info("wrote the seeded random transformers of %s under %s", ", ".join(kinds), cfg.out)
        else:
            logger.info("VAE reconstruction PSNR (test split): %s", report)
    elif args.command == "finetune-decoder":
        cfg = load_config(BasesConfig, args.config, args.set)
        path = os.path.join(cfg.out, "vae_report.json")
        with open(require_file(path, "VAE report of the bases"), encoding="utf-8") as f:
            previous = json.load(f)
        if f"{args.kind}_decoder_steps" in previous and not args.again:
            logger.info("%s decoder already fine-tuned (%s); --again to train it further", args.kind, path)
        else:
            vae_dir = os.path.join(cfg.out, f"{args.kind}_base", "vae")
            write_json(path, {**previous, **finetune_decoder(vae_dir, args.kind, cfg.dataset, cfg.decoder_finetune)})
    elif args.command == "fit-segmenter":
        size = args.size
        frames, labels = split_frames(args.root, "train", size)
        net = fit_segmenter(frames, labels, args.steps, seed=args.seed)
        test_frames, test_labels = split_frames(args.root, "test", size)
        score = region_iou(net.predict(test_frames), test_labels)
        logger.info("segmenter on the test split's real frames: %s", score)
        save_segmenter(net, args.out)
        write_json(os.path.splitext(args.out)[0] + ".json", {"test_split_iou": score, "steps": args.steps})
    elif args.command == "copy-baseline":
        clips = {"root": "outputs/toy_world/processed", "split": "test", "limit": None, "num_frames": 9,
                 "size": (64, 96), **evaluated_clips(args.eval_dir)}
        clips.update({k: v for k, v in vars(args).items() if k in clips and v is not None})
        logger.info("wrote %s", copy_baseline(args.eval_dir, clips["root"], clips["split"], clips["num_frames"],
                                              clips["size"], limit=clips["limit"]))
    elif args.command == "table":
        table = ablation_markdown(args.eval_dir)
        write_text(os.path.join(args.eval_dir, "ablation.md"), table)
        print(table)
    elif args.command == "pretrain-appearance":
        summary = pretrain_appearance(args.config, args.set, args.base_out, args.init_base)
        logger.info("trained to step %d; weights in %s", summary["step"], summary["final_dir"])
    elif args.command == "appearance-eval":
        runs = {"untrained branches": (args.config[0], ["model.controlnet_path=null"])}
        runs.update({os.path.splitext(os.path.basename(c))[0]: (c, []) for c in args.config})
        rows = appearance_report(runs, args.root, args.split, args.size, load_segmenter(args.segmenter))
        write_json(args.out, rows)
        for row in rows:
            logger.info("%s", row)
    elif args.command == "subset-latents":
        logger.info("wrote %s", subset_latents(args.source, args.dest, args.conditions))
    elif args.command == "demo-iou":
        segmenter = load_segmenter(require_file(args.segmenter, "segmenter"))
        for row in demo_iou(args.out_dir, segmenter):
            print(json.dumps(row))
    elif args.command == "step-times":
        cfg = load_config(BasesConfig, args.config, args.set)
        print(json.dumps({"threads": torch.get_num_threads(), "batch": args.batch, "overrides": args.set,
                          **transformer_step_times(cfg, args.batch, args.repeats)}))
    elif args.command == "pack":
        from data_tools.runtime.checkpoints import pack_folder

        pack_folder(args.src, args.dst, skip=args.drop)
    elif args.command == "vae-psnr":
        from diffusers import AutoencoderKL, AutoencoderKLCogVideoX

        from appearance_gen.model import vae_downscale

        cls = AutoencoderKL if args.kind == "appearance" else AutoencoderKLCogVideoX
        for path in args.vaes:
            require_file(os.path.join(path, "config.json"), "VAE config")
            vae = cls.from_pretrained(path).eval()
            score = vae_psnr(vae, args.root, args.split, args.num_frames, args.size, args.kind == "appearance",
                             args.limit)
            print(json.dumps({"vae": path, "downscale": vae_downscale(vae.config), **score}))
    elif args.command == "seg-iou":
        out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.runs[0])), "seg_iou.json")
        for row in segmentation_report(args.runs, load_segmenter(args.segmenter), out):
            logger.info("%s", {k: v for k, v in row.items() if k != "per_sample"})
    elif args.command == "paired":
        with open(require_file(args.seg_iou, "seg-iou results"), encoding="utf-8") as f:
            try:
                rows = json.load(f)
            except json.JSONDecodeError as exc:
                raise DataError(args.seg_iou, f"not seg-iou JSON: {exc}") from None
        print(json.dumps(paired_difference(rows, args.a, args.b, args.key)))
    return 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
