"""Train the condition branch on pre-computed latents with the shared ``data_tools.runtime.training.Trainer``.

Loss as CogVideoX I2V: v-prediction turned into an x0 estimate (``scheduler.get_velocity``) against the clean
latent, weighted by ``1 / (1 - alpha_bar_t)``; the first-frame latent (and each condition's first-frame latent)
is dropped to zero with probability ``train.noised_image_dropout`` per sample, and all condition inputs together
with probability ``train.condition_dropout`` (what ``generate.guidance_on: conditions`` needs). A model with
several conditions can also see, with probability ``train.condition_subset_dropout`` per sample, only a random
non-empty proper subset of them (the others zeroed), so that each condition stays informative on its own.

    python -m motion_gen.train --config configs/motion/tiny.yaml                       # one process
    torchrun --nproc_per_node 2 -m motion_gen.train --config ...                       # DDP (CPU: gloo)
    accelerate launch --config_file configs/accelerate/deepspeed_zero2.yaml -m motion_gen.train --config ...
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os

import numpy as np
import torch

from data_tools.io.config import to_dict
from data_tools.datasets.hoi_dataset import HOISplit, split_dir
from data_tools.errors import DataError, require_paths
from data_tools.runtime.latent_store import LatentDataset
from data_tools.runtime.training import Trainer, TrainingSpec
from motion_gen.components import build_scheduler, load_transformer
from motion_gen.config import MotionConfig, load_motion_config
from motion_gen.latents import condition_input, pad_first_frame, sample_latents
from motion_gen.model import CogVideoXConditionTransformer, rotary_embeddings

logger = logging.getLogger(__name__)


def condition_subsets(batch_size: int, num_conditions: int, probability: float,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """``(batch_size, num_conditions)`` keep mask: each row is all ones, or with ``probability`` a uniformly drawn
    non-empty proper subset of the conditions (bit ``i`` of a number in ``[1, 2**n - 2]``). Draws nothing when
    ``probability`` is 0 or there is a single condition (which has no proper non-empty subset)."""
    keep = torch.ones(batch_size, num_conditions)
    if probability <= 0 or num_conditions < 2:
        return keep
    use_subset = torch.rand(batch_size, generator=generator) < probability
    subset = torch.randint(1, 2 ** num_conditions - 1, (batch_size,), generator=generator)
    bits = ((subset[:, None] >> torch.arange(num_conditions)) & 1).float()
    return torch.where(use_subset[:, None], bits, keep)


class MotionSpec(TrainingSpec):
    """The motion stage as a training spec: frozen CogVideoX-I2V base, trainable condition branch."""

    def __init__(self, cfg: MotionConfig, transformer: CogVideoXConditionTransformer | None = None,
                 latent_meta: dict | None = None):
        self.cfg = cfg
        self.transformer = transformer if transformer is not None else load_transformer(cfg.model, cfg.generate)
        self.transformer.set_trainable(train_base=cfg.train.train_base)
        if cfg.train.gradient_checkpointing:
            self.transformer.enable_gradient_checkpointing()
        self.scheduler = build_scheduler("dpm", cfg.model.pretrained)
        self.scale = float((latent_meta or {}).get("latent_scale", 1.0))
        self.names = list(self.transformer.config.condition_names)
        if cfg.train.condition_subset_dropout > 0 and len(self.names) < 2:
            logger.warning("train.condition_subset_dropout=%s has no effect on a model with %d condition(s)",
                           cfg.train.condition_subset_dropout, len(self.names))
        self._validation = None  # (bundle, first frame, prompt embeddings), loaded at the first validation

    # ------------------------------------------------------------------ Trainer hooks
    def setup(self, accelerator) -> None:
        """Frozen weights in bf16 under bf16 mixed precision (DDP); trainable ones in fp32."""
        from accelerate.utils import DistributedType

        if accelerator.distributed_type != DistributedType.DEEPSPEED:
            low = torch.bfloat16 if accelerator.mixed_precision == "bf16" else None
            for p in self.transformer.parameters():
                p.data = p.data.float() if p.requires_grad else (p.data.to(low) if low else p.data)
        self.transformer.to(accelerator.device)

    def trainable_module(self) -> torch.nn.Module:
        return self.transformer

    def compute_loss(self, model, batch, accelerator) -> torch.Tensor:
        device = accelerator.device
        dtype = next(p for p in self.transformer.parameters() if p.requires_grad).dtype
        return self.loss(model, batch, device, dtype)

    def loss(self, model, batch: dict, device, dtype=torch.float32, generator: torch.Generator | None = None) -> torch.Tensor:
        """The weighted v-prediction loss of one batch (``generator`` makes noise, timesteps and dropout fixed)."""
        get = lambda name: batch[name].to(device=device, dtype=torch.float32)  # noqa: E731
        video = sample_latents(get("video"), self.scale, generator)  # (B, F, C, h, w)
        batch_size, frames, _, height, width = video.shape
        keep = (torch.rand(batch_size, generator=generator) >= self.cfg.train.noised_image_dropout).float()
        keep = keep.to(device).view(-1, 1, 1, 1, 1)
        image = pad_first_frame(sample_latents(get("first_frame"), self.scale, generator) * keep, frames)
        keep_conditions = torch.ones(batch_size)
        if self.cfg.train.condition_dropout > 0:  # no draw otherwise: runs without it keep their random streams
            keep_conditions = (torch.rand(batch_size, generator=generator) >= self.cfg.train.condition_dropout).float()
        keep_each = keep_conditions[:, None] * condition_subsets(
            batch_size, len(self.names), self.cfg.train.condition_subset_dropout, generator)
        keep_each = keep_each.to(device).view(batch_size, len(self.names), 1, 1, 1, 1)
        conditions = {
            n: (condition_input(sample_latents(get(f"cond/{n}"), self.scale, generator),
                                sample_latents(get(f"cond_first/{n}"), self.scale, generator) * keep)
                * keep_each[:, i]).to(dtype)
            for i, n in enumerate(self.names)}
        noise = torch.randn(video.shape, generator=generator).to(device)
        timesteps = torch.randint(0, self.scheduler.config.num_train_timesteps, (batch_size,), generator=generator)
        timesteps = timesteps.to(device)
        noisy = self.scheduler.add_noise(video, noise, timesteps)
        config = self.transformer.config
        rotary = rotary_embeddings(config, frames, height, width, device)
        ofs = video.new_full((1,), 2.0) if config.ofs_embed_dim else None
        output = model(hidden_states=torch.cat([noisy, image], dim=2).to(dtype),
                       encoder_hidden_states=get("prompt_embeds").to(dtype), timestep=timesteps,
                       conditions=conditions, image_rotary_emb=rotary, ofs=ofs, return_dict=False)[0]
        prediction = self.scheduler.get_velocity(output.float(), noisy, timesteps)
        alphas = self.scheduler.alphas_cumprod.to(device)[timesteps]
        weights = (1.0 / (1.0 - alphas)).view(-1, 1, 1, 1, 1)
        return (weights * (prediction - video) ** 2).reshape(batch_size, -1).mean(dim=1).mean()

    def validate(self, model, accelerator, step: int, output_dir: str) -> None:
        """Generate the validation sample with the current weights; writes ``video.mp4`` and ``side_by_side.mp4``.

        Rank 0 builds the pipeline without T5 for each validation and frees it afterwards; the prompt embeddings
        are computed once (T5 loaded, run and freed) and kept on the CPU.
        """
        train = self.cfg.train
        if not (train.validation_sample or train.validation_split):
            return
        from diffusers.training_utils import free_memory

        from motion_gen.generator import MotionGenerator, build_pipeline, encode_prompts
        from motion_gen.infer import write_outputs

        device = str(accelerator.device)
        # no CPU offload hooks on the module being trained
        cfg = dataclasses.replace(self.cfg, generate=dataclasses.replace(self.cfg.generate, cpu_offload=False))
        generator = MotionGenerator(cfg, build_pipeline(cfg, device, transformer=model, text_encoder=False))
        try:
            if self._validation is None:
                bundle, first = validation_bundle(cfg, generator)
                self._validation = bundle, first, encode_prompts(cfg, bundle.prompt, device, model)
            bundle, first, embeds = self._validation
            cuda = accelerator.device.type == "cuda"
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and accelerator.mixed_precision == "bf16"):
                video = generator.generate(first, bundle, seed=train.loop.seed,
                                           num_inference_steps=train.validation_steps, prompt_embeds=embeds)
            write_outputs(output_dir, video, bundle, fps=cfg.generate.fps)
        finally:
            del generator
            free_memory()
        logger.info("validation video written to %s", output_dir)


def validation_bundle(cfg: MotionConfig, generator) -> tuple:
    """``(bundle, first frame)`` of ``train.validation_sample`` (a condition folder) or of the first clip of
    ``train.validation_split`` of ``data.root``, at the generator's size and frame count."""
    from motion_gen.infer import load_inputs

    if cfg.train.validation_sample:
        return load_inputs(cfg.train.validation_sample, generator)
    split = HOISplit(cfg.data.root, cfg.train.validation_split, conditions=generator.condition_names,
                     num_frames=generator.num_frames, size=(generator.height, generator.width),
                     resize_mode=cfg.generate.resize_mode)
    if not len(split):
        raise DataError(split_dir(cfg.data.root, cfg.train.validation_split), "validation split has no clips")
    bundle = split[0]
    return bundle, bundle.first_frame


def required_paths(cfg: MotionConfig) -> dict[str, str]:
    """``{config key: path}`` of everything a training run reads, checked before any weights are loaded."""
    train = cfg.train
    paths = {"data.latents": cfg.data.latents, "model.pretrained": cfg.model.pretrained,
             "model.transformer": cfg.model.transformer}
    if train.loop.validate_every and train.validation_sample:
        paths["train.validation_sample"] = train.validation_sample
    elif train.loop.validate_every and train.validation_split:
        if not cfg.data.root:
            raise DataError(None, "train.validation_split needs data.root (the processed dataset folder)")
        paths[f"train.validation_split ({train.validation_split} of data.root)"] = split_dir(cfg.data.root,
                                                                                           train.validation_split)
    return {**{k: v for k, v in paths.items() if v}, **train.loop.required_paths()}


def build_spec(cfg: MotionConfig) -> tuple[MotionSpec, LatentDataset]:
    """The spec and the latent dataset of a config (checks the store matches the model)."""
    dataset = LatentDataset(cfg.data.latents)
    meta = dataset.meta
    want = {"condition_names": list(cfg.model.condition_names), "num_frames": cfg.generate.num_frames,
            "height": cfg.generate.height, "width": cfg.generate.width}
    wrong = {k: (meta.get(k), v) for k, v in want.items() if meta.get(k) != v}
    if wrong:
        raise DataError(os.path.join(cfg.data.latents, "store.json"),
                        f"latent store does not match the config (stored, wanted): {wrong}")
    dtype = torch.bfloat16 if cfg.train.loop.mixed_precision == "bf16" and torch.cuda.is_available() else None
    return MotionSpec(cfg, load_transformer(cfg.model, cfg.generate, dtype), meta), dataset


def train(cfg: MotionConfig) -> dict:
    """Run training (every input path checked first); returns the Trainer's summary."""
    require_paths(required_paths(cfg), "motion training")
    spec, dataset = build_spec(cfg)
    run_config = {"motion": to_dict(cfg), "transformer_config": {k: v for k, v in spec.transformer.config.items()
                                                                 if not k.startswith("_")},
                  "build_dtype": str(spec.transformer.dtype).removeprefix("torch.")}   # for the converter
    return Trainer(spec, dataset, cfg.train.loop, cfg.train.optim, run_config).train()


def main(argv=None) -> None:
    from data_tools.io.cli import setup_logging

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="motion YAML, e.g. configs/motion/dexycb.yaml")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. train.loop.max_steps=100")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    summary = train(load_motion_config(args.config, args.overrides))
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()  # a clean gloo shutdown (a worker once hung at exit without it)
    losses = summary["losses"]
    logger.info("done: step %d, world %d, last loss %s", summary["step"], summary["world_size"],
                f"{np.mean(losses[-5:]):.4f}" if losses else "n/a")


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
