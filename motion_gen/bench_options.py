"""Time each generation option (``motion_gen.options``) against the plain pipeline, in one process.

Default (GPU): ``configs/motion/random_real_size.yaml`` (CogVideoX-5b-I2V sizes, random bf16 weights, 49x480x720,
guidance 6), a few denoising steps per video. ``--tiny``: the tiny config on the CPU with 4 blocks (seconds; the
first-block cache needs two blocks after the condition branch). Each option gets its own pipeline, built by
``build_pipeline`` as a user's would be, one untimed 1-step warm-up video (compilation happens there), then one
timed video; the denoiser runs on random prompt embeddings and condition latents and the video stays in latent
space (no VAE decode; the options do not touch the VAE). Per option: seconds per video and per step, blocks
computed, and on CUDA ``torch.cuda.max_memory_allocated`` over the timed video. An option that fails (e.g. out of
memory) records its error and the others still run; the JSON is rewritten after each option (compile, the
slowest, comes last).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
from collections import Counter

import torch

from data_tools.errors import DataError
from data_tools.io.atomic import write_json
from data_tools.io.benchmark import time_call
from data_tools.io.cli import positive_int, setup_logging
from motion_gen.config import CacheConfig, load_motion_config

logger = logging.getLogger(__name__)
REAL = "configs/motion/random_real_size.yaml"
TINY = "configs/motion/tiny.yaml"
TINY_OVERRIDES = ["model.tiny.num_layers=4"]  # 3 blocks after the 1-block branch: first_block has blocks to skip
OPTIONS = {  # name -> fields of generate
    "plain": {},
    "first_block_cache": {"cache": CacheConfig("first_block")},
    "pyramid_attention": {"cache": CacheConfig("pyramid_attention")},
    "fp8_weights": {"layerwise_casting": "fp8_e4m3"},
    "group_offload": {"group_offload": "block_level"},
    "group_offload_fp8": {"group_offload": "block_level", "layerwise_casting": "fp8_e4m3"},  # the 24 GB set-up
    "compile": {"compile": True},
}


@contextlib.contextmanager
def count_block_calls(transformer):
    """Yields a ``Counter`` of computations by name: ``transformer_blocks.i`` / ``condition_blocks.i`` when the block
    runs (its first layer, ``norm1``; a block the cache skips does not), ``<block>.attn1`` when its attention runs
    (its query projection; an attention the cache reuses does not)."""
    counts: Counter = Counter()
    handles = [module.register_forward_hook(lambda *_, name=name: counts.update([name]))
               for group in ("transformer_blocks", "condition_blocks")
               for i, block in enumerate(getattr(transformer, group))
               for module, name in [(block.norm1, f"{group}.{i}"), (block.attn1.to_q, f"{group}.{i}.attn1")]]
    try:
        yield counts
    finally:
        for handle in handles:
            handle.remove()


def denoise(pipe, cfg, steps: int, seed: int = 0):
    """One video of ``cfg.generate``'s size in latent space from random prompt embeddings and condition latents."""
    gen, config = cfg.generate, pipe.transformer.config
    g = torch.Generator().manual_seed(seed)
    device, dtype = pipe._execution_device, pipe.transformer.dtype
    embeds = torch.randn(1, config.max_text_seq_length, config.text_embed_dim, generator=g).to(device, dtype)
    shape = pipe.zero_condition_latent(gen.num_frames, gen.height, gen.width).shape
    latents = {n: torch.randn(shape, generator=g).to(device, dtype) for n in config.condition_names}
    return pipe(image=torch.zeros(1, 3, gen.height, gen.width), prompt_embeds=embeds, negative_prompt_embeds=embeds,
                condition_latents=latents, height=gen.height, width=gen.width, num_frames=gen.num_frames,
                num_inference_steps=steps, guidance_scale=gen.guidance_scale, output_type="latent",
                generator=torch.Generator().manual_seed(seed), max_sequence_length=config.max_text_seq_length)


def bench_option(cfg, fields: dict, steps: int, device: str) -> dict:
    """Build the pipeline with ``fields`` in ``generate``, warm up, time one video."""
    from diffusers.training_utils import free_memory

    from motion_gen.generator import build_pipeline

    cfg = dataclasses.replace(cfg, generate=dataclasses.replace(cfg.generate, **fields))
    cuda = torch.device(device).type == "cuda"
    pipe = build_pipeline(cfg, device, text_encoder=False)
    try:
        denoise(pipe, cfg, 1)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        with count_block_calls(pipe.transformer) as counts:
            seconds = time_call(lambda: denoise(pipe, cfg, steps), torch.device(device))
        counted = not fields.get("compile")  # compiled blocks do not call the counting hooks
        return {"seconds_per_video": round(seconds, 3), "seconds_per_step": round(seconds / steps, 3),
                "blocks_computed": sum(v for k, v in counts.items() if not k.endswith("attn1")) if counted else None,
                "attentions_computed": sum(v for k, v in counts.items() if k.endswith("attn1")) if counted else None,
                "max_memory_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None}
    finally:
        del pipe
        free_memory()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=None, help=f"motion config (default: {REAL}; {TINY} with --tiny)")
    parser.add_argument("--tiny", action="store_true", help="the tiny config (4 blocks) on the CPU, seconds")
    parser.add_argument("--options", default=",".join(OPTIONS), help="comma list of " + ", ".join(OPTIONS))
    parser.add_argument("--steps", type=positive_int, default=4, help="denoising steps per timed video")
    parser.add_argument("--device", default=None, help="default: the config's generate.device, else cuda if any")
    parser.add_argument("--out", default="outputs/bench/motion_options.json")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging; tracebacks of errors")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    names = args.options.split(",")
    unknown = [n for n in names if n not in OPTIONS]
    if unknown:
        raise DataError(None, f"--options: unknown {unknown}; known: {list(OPTIONS)}")
    from motion_gen.generator import default_device

    path = args.config or (TINY if args.tiny else REAL)
    cfg = load_motion_config(path, TINY_OVERRIDES if args.tiny else [])
    device = default_device(args.device or cfg.generate.device)
    result = {"config": path, "device": torch.cuda.get_device_name() if device == "cuda" else device,
              "size": [cfg.generate.num_frames, cfg.generate.height, cfg.generate.width], "steps": args.steps,
              "guidance_scale": cfg.generate.guidance_scale, "options": {}}
    for name in names:
        try:
            result["options"][name] = bench_option(cfg, OPTIONS[name], args.steps, device)
        except (RuntimeError, ValueError) as exc:  # out of memory, an unsupported combination: recorded
            logger.error("%s failed: %s", name, exc)
            result["options"][name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        logger.info("%s: %s", name, json.dumps(result["options"][name]))
        write_json(args.out, result)  # after each option: a run stopped at its budget keeps the measured ones
    logger.info("wrote %s", args.out)


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
