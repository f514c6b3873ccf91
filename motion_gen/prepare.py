"""Pre-compute the motion stage's training latents (resumable, shardable across processes) and merge shards.

Per clip of a processed dataset split, one sample in a ``data_tools.runtime.latent_store`` store with tensors
(VAE posterior parameters, mean and log-variance stacked on channels, ``(2C, F, h, w)``; not yet scaled):

    video                 the clip
    first_frame           its first frame (noised in pixel space first when ``data.image_noise``), F = 1
    cond/<name>           each condition video
    cond_first/<name>     each condition's first frame, F = 1
    prompt_embeds         T5 embeddings of the caption ``(L, D)``

Run with ``torchrun --nproc_per_node N -m motion_gen.prepare ...`` (or ``accelerate launch``) to shard: worker r
writes ``<latents>/shards/shard-r-of-N`` and rank 0 merges all shards into ``<latents>`` at the end
(``python -m motion_gen.prepare merge <latents>`` does the same by hand, e.g. for shards from several machines).
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import types

import torch
from tqdm.auto import tqdm

from data_tools.maps.bundle import to_model_range
from data_tools.io.cli import setup_logging
from data_tools.errors import DataError
from data_tools.datasets.hoi_dataset import HOISplit
from data_tools.runtime.latent_store import LatentStoreWriter, find_shards, merge_stores, sample_key, shard_root
from data_tools.runtime.sharding import shard_indices
from motion_gen.components import load_text_components, load_vae, max_text_length
from motion_gen.config import DTYPES, MotionConfig, load_motion_config
from motion_gen.latents import encode_distribution, latent_scale

logger = logging.getLogger(__name__)
IMAGE_NOISE_LOG_SIGMA = (-3.0, 0.5)  # CogVideoX I2V: sigma = exp(N(-3, 0.5)) added to the first frame


def store_meta(cfg: MotionConfig, vae) -> dict:
    """Settings that must agree between prepare runs, shards and training."""
    gen, data = cfg.generate, cfg.data
    return {"condition_names": list(cfg.model.condition_names), "num_frames": gen.num_frames,
            "height": gen.height, "width": gen.width, "resize_mode": gen.resize_mode,
            "latent_scale": latent_scale(vae), "latent_channels": int(vae.config.latent_channels),
            "weights": cfg.model.pretrained or f"tiny(seed={cfg.model.tiny.seed})",
            "image_noise": data.image_noise, "storage_dtype": data.storage_dtype,
            "text_length": max_text_length(cfg.model)}


def encode_prompts(tokenizer, text_encoder, prompts: list[str], max_length: int, device) -> torch.Tensor:
    """T5 embeddings ``(B, L, D)`` exactly as the CogVideoX pipelines compute them."""
    from diffusers import CogVideoXImageToVideoPipeline

    # the pipeline method only needs these attributes; calling it keeps training and inference identical
    owner = types.SimpleNamespace(tokenizer=tokenizer, text_encoder=text_encoder, _execution_device=device)
    return CogVideoXImageToVideoPipeline._get_t5_prompt_embeds(owner, prompt=prompts, max_sequence_length=max_length,
                                                              device=device, dtype=text_encoder.dtype)


def _sample_generator(key: str, seed: int) -> torch.Generator:
    digest = int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:15], 16)
    return torch.Generator().manual_seed(digest)


@torch.no_grad()
def encode_bundle(bundle, vae, tokenizer, text_encoder, names, max_length: int, image_noise: bool, seed: int,
                  key: str, device) -> dict[str, torch.Tensor]:
    """The stored tensors of one ``ConditionBundle`` (with ``video`` set)."""
    if bundle.video is None:
        raise DataError(bundle.name, "clip has no video")
    video = to_model_range(bundle.video)[None]  # (1, T, 3, H, W)
    first = video[:, :1]
    if image_noise:
        g = _sample_generator(key, seed)
        sigma = torch.exp(torch.normal(*IMAGE_NOISE_LOG_SIGMA, size=(1,), generator=g))
        first = first + torch.randn(first.shape, generator=g) * sigma
    out = {"video": encode_distribution(vae, video)[0], "first_frame": encode_distribution(vae, first)[0]}
    for name in names:
        cond = to_model_range(bundle.conditions[name])[None]
        out[f"cond/{name}"] = encode_distribution(vae, cond)[0]
        out[f"cond_first/{name}"] = encode_distribution(vae, cond[:, :1])[0]
    out["prompt_embeds"] = encode_prompts(tokenizer, text_encoder, [bundle.prompt or ""], max_length, device)[0]
    return out


def prepare(cfg: MotionConfig, rank: int = 0, world: int = 1, device: str | None = None) -> dict:
    """Encode this worker's share of ``data.root``/``data.split`` into ``data.latents`` (or its shard)."""
    if not cfg.data.root:
        raise DataError(None, "data.root is not set (the processed dataset to encode)")
    if cfg.data.storage_dtype not in DTYPES:
        raise DataError(None, f"data.storage_dtype must be one of {sorted(DTYPES)}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = cfg.model.torch_dtype() if device != "cpu" else None
    gen = cfg.generate
    dataset = HOISplit(cfg.data.root, cfg.data.split, cfg.model.condition_names, num_frames=gen.num_frames,
                       size=(gen.height, gen.width), resize_mode=gen.resize_mode)
    vae = load_vae(cfg.model, dtype).to(device)
    if gen.vae_slicing:
        vae.enable_slicing()
    if gen.vae_tiling:
        vae.enable_tiling()
    tokenizer, text_encoder = load_text_components(cfg.model, dtype)
    text_encoder.to(device)
    writer = LatentStoreWriter(shard_root(cfg.data.latents, rank, world), store_meta(cfg, vae))
    indices = shard_indices(len(dataset), rank, world)
    if cfg.data.limit is not None:
        indices = [i for i in indices if i < cfg.data.limit]
    storage = DTYPES[cfg.data.storage_dtype]
    written = skipped = 0
    for i in tqdm(indices, desc=f"latents[{rank}/{world}]", disable=rank != 0):
        key = sample_key(dataset.clip_name(i))
        if writer.done(key):
            skipped += 1
            continue
        bundle = dataset[i]
        tensors = encode_bundle(bundle, vae, tokenizer, text_encoder, cfg.model.condition_names,
                                max_text_length(cfg.model), cfg.data.image_noise, cfg.train.loop.seed, key, device)
        writer.write(key, {k: v.to(storage) for k, v in tensors.items()},
                     {"name": dataset.clip_name(i), "prompt": bundle.prompt})
        written += 1
    logger.info("worker %d/%d: wrote %d samples, skipped %d finished ones", rank, world, written, skipped)
    return {"written": written, "skipped": skipped, "root": writer.root}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    enc = sub.add_parser("encode", help="encode a dataset split (default command)")
    enc.add_argument("--config", required=True, help="motion YAML, e.g. configs/motion/dexycb.yaml")
    enc.add_argument("overrides", nargs="*", help="key.sub=value config overrides")
    enc.add_argument("--no-merge", action="store_true", help="leave shards unmerged")
    enc.add_argument("-v", "--verbose", action="store_true")
    mrg = sub.add_parser("merge", help="merge shard stores into one store")
    mrg.add_argument("dest", help="destination store (its shards/ are merged when no --sources are given)")
    mrg.add_argument("--sources", nargs="*", help="shard store folders (default: <dest>/shards/*)")
    mrg.add_argument("-v", "--verbose", action="store_true")
    argv = list(argv) if argv is not None else None
    import sys

    raw = sys.argv[1:] if argv is None else argv
    if not raw or raw[0] not in ("encode", "merge", "-h", "--help"):
        raw = ["encode", *raw]
    args = parser.parse_args(raw)
    setup_logging(args.verbose)
    if args.command == "merge":
        sources = args.sources or find_shards(args.dest)
        logger.info("%s", merge_stores(sources, args.dest))
        return
    from accelerate import PartialState

    cfg = load_motion_config(args.config, args.overrides)
    state = PartialState(cpu=not torch.cuda.is_available())
    device = str(state.device) if state.device.type != "cpu" else "cpu"
    result = prepare(cfg, state.process_index, state.num_processes, device)
    state.wait_for_everyone()
    if state.num_processes > 1 and state.is_main_process and not args.no_merge:
        result["merge"] = merge_stores(find_shards(cfg.data.latents), cfg.data.latents)
    logger.info("%s", result)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
