"""Step-time (and GPU memory) benchmark of the appearance model: base FLUX transformer alone vs with the two
ControlNet branches, for a denoising step (forward) and a training step (forward + backward into the branches).

    python -m appearance_gen.bench                      # tiny config, CPU
    python -m appearance_gen.bench --real               # FLUX.1-dev sizes, random weights, bf16, 480x720 (GPU)
"""
from __future__ import annotations

import argparse
import json
import logging
import os
from typing import Sequence

import torch

from appearance_gen.config import load_appearance_config
from appearance_gen.model import AppearanceControlNets
from appearance_gen.pipeline import AppearancePipeline, predict_velocity
from data_tools.errors import DataError
from data_tools.io.atomic import write_json
from data_tools.io.benchmark import median_time
from data_tools.io.cli import setup_logging
from data_tools.runtime.random_init import build_on

logger = logging.getLogger(__name__)


def build_models(args, device: torch.device, dtype: torch.dtype):
    """(transformer, controlnets, text length, text dim, pooled dim, latent channels)."""
    from diffusers import FluxTransformer2DModel

    cfg = load_appearance_config(args.config)
    torch.manual_seed(0)
    if args.real:
        kwargs = dict(num_layers=args.layers, num_single_layers=args.single_layers, guidance_embeds=True)
        hint = (16, 16, 16, 16)
        text_len = args.text_tokens or 512
    else:
        kwargs = dict(cfg.model.tiny.transformer)
        hint = tuple(cfg.controlnet.hint_block_out_channels)
        text_len = args.text_tokens or cfg.sampling.max_sequence_length
    with build_on(device, dtype):  # directly in the benchmark dtype on the device (FLUX.1-dev: 12B parameters)
        transformer = FluxTransformer2DModel(**kwargs).requires_grad_(False).eval()
        nets = AppearanceControlNets.from_transformer(transformer, branches=cfg.controlnet.branches,
                                                      num_layers=cfg.controlnet.num_layers,
                                                      num_single_layers=cfg.controlnet.num_single_layers,
                                                      hint_block_out_channels=hint)
    nets.to(device=device, dtype=dtype)
    c = transformer.config
    return transformer, nets, text_len, c.joint_attention_dim, c.pooled_projection_dim, c.in_channels // 4, len(hint) - 1


def run(args) -> dict:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.real and device.type != "cuda":
        raise DataError(None, "--real builds FLUX.1-dev sizes (12B parameters): it needs a CUDA GPU")
    dtype = torch.bfloat16 if args.real and device.type == "cuda" else torch.float32
    transformer, nets, text_len, text_dim, pooled_dim, latent_ch, downs = build_models(args, device, dtype)
    if args.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
        for net in nets.controlnets.values():
            net.enable_gradient_checkpointing()
    h, w = args.size
    lh, lw = h // 2 ** downs, w // 2 ** downs
    b = args.batch
    g = torch.Generator(device).manual_seed(0)
    rand = lambda *shape: torch.randn(*shape, generator=g, device=device, dtype=dtype)  # noqa: E731
    latents = AppearancePipeline._pack_latents(rand(b, latent_ch, lh, lw), b, latent_ch, lh, lw)
    img_ids = AppearancePipeline._prepare_latent_image_ids(b, lh // 2, lw // 2, device, dtype)
    text_ids = torch.zeros(text_len, 3, device=device, dtype=dtype)
    embeds, pooled = rand(b, text_len, text_dim), rand(b, pooled_dim)
    conds = {k: rand(b, 3 * len(v), h, w).clamp(-1, 1) for k, v in nets.branches.items()}
    sigma = torch.full((b,), 0.7, device=device, dtype=dtype)
    guidance = torch.full((b,), 3.5, device=device, dtype=torch.float32)

    def base_forward():
        return transformer(hidden_states=latents, timestep=sigma, guidance=guidance, pooled_projections=pooled,
                           encoder_hidden_states=embeds, txt_ids=text_ids, img_ids=img_ids, return_dict=False)[0]

    def full_forward():
        return predict_velocity(transformer, nets, latents, sigma, embeds, pooled, text_ids, img_ids, conds, 3.5)

    base_trainable = transformer.x_embedder.weight  # stands in for "train the base": gradients through every block

    def base_train():
        base_trainable.requires_grad_(True)
        base_forward().float().pow(2).mean().backward()
        base_trainable.requires_grad_(False)
        base_trainable.grad = None

    nets.requires_grad_(True)

    def full_train():
        full_forward().float().pow(2).mean().backward()
        nets.zero_grad(set_to_none=True)

    results = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
               "dtype": str(dtype).replace("torch.", ""), "size": [h, w], "batch": b, "tokens": latents.shape[1],
               "text_tokens": text_len, "real": bool(args.real),
               "gradient_checkpointing": bool(args.gradient_checkpointing),
               "base_params_m": sum(p.numel() for p in transformer.parameters()) / 1e6,
               "controlnet_params_m": sum(p.numel() for p in nets.parameters()) / 1e6}
    with torch.no_grad():
        results["base_forward_s"] = median_time(base_forward, device, args.warmup, args.repeats)
        results["forward_s"] = median_time(full_forward, device, args.warmup, args.repeats)
    results["base_train_step_s"] = median_time(base_train, device, args.warmup, args.repeats)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    results["train_step_s"] = median_time(full_train, device, args.warmup, args.repeats)
    if device.type == "cuda":
        results["train_peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    results["forward_ratio"] = results["forward_s"] / results["base_forward_s"]
    results["train_ratio"] = results["train_step_s"] / results["base_train_step_s"]
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appearance_gen.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/appearance/tiny.yaml", help="branches (and tiny sizes)")
    parser.add_argument("--real", action="store_true", help="FLUX.1-dev transformer sizes, random weights, bf16 on GPU")
    parser.add_argument("--layers", type=int, default=19, help="--real: base double blocks (FLUX.1-dev: 19)")
    parser.add_argument("--single-layers", type=int, default=38, help="--real: base single blocks (FLUX.1-dev: 38)")
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="image size (default 480 720 with --real, else 64 96)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--text-tokens", type=int, default=None, help="T5 tokens (default 512 with --real)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default="outputs/bench/appearance", help="folder for the JSON result")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    args.size = args.size or ([480, 720] if args.real else [64, 96])
    setup_logging(args.verbose)
    results = run(args)
    name = "real" if args.real else "tiny"
    path = os.path.join(args.out, f"{name}{'_gc' if args.gradient_checkpointing else ''}.json")
    write_json(path, results)
    print(json.dumps(results, indent=2))
    logger.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
