"""Benchmark of the condition branch: forward+backward time and memory against the base transformer.

Default (CPU, seconds): the tiny config's transformer at the tiny size, base ``CogVideoXTransformer3DModel``
fully trainable (as in plain I2V fine-tuning) vs the condition model with 0 (base trainable), 1 and 3 conditions
(base frozen, branch trainable), all in one process. Time is the minimum over repeats with the models interleaved (the shared
CPU is noisy); memory on CPU = parameters + tensors saved for backward (autograd's saved-tensor hooks), on CUDA =
peak allocated memory.

``--real`` (needs a GPU with ~80 GB): the CogVideoX-5b-I2V architecture with random weights in bf16, 12 condition
blocks, 3 conditions, 49x480x720 (13x60x90 latents), gradient checkpointing (``--no-gradient-checkpointing``), one
AdamW step (``--zero2-offload``: DeepSpeed ZeRO-2 with the optimizer on the CPU); peak memory and time.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics

import torch

from data_tools.errors import DataError
from data_tools.io.atomic import write_json
from data_tools.io.benchmark import time_call
from data_tools.io.cli import positive_int, setup_logging
from data_tools.runtime.random_init import build_on
from motion_gen.components import tiny_base_transformer
from motion_gen.config import load_motion_config
from motion_gen.model import CogVideoXConditionTransformer, rotary_embeddings

logger = logging.getLogger(__name__)
COGVIDEOX_5B_I2V = dict(num_attention_heads=48, attention_head_dim=64, in_channels=32, out_channels=16,
                        time_embed_dim=512, text_embed_dim=4096, num_layers=42, sample_width=90, sample_height=60,
                        sample_frames=49, max_text_seq_length=226, use_rotary_positional_embeddings=True,
                        use_learned_positional_embeddings=True)


def _inputs(config, batch: int, frames: int, height: int, width: int, names, device, dtype):
    g = torch.Generator().manual_seed(0)
    rand = lambda *s: torch.randn(*s, generator=g).to(device, dtype)  # noqa: E731
    kwargs = dict(hidden_states=rand(batch, frames, config.in_channels, height, width),
                  encoder_hidden_states=rand(batch, config.max_text_seq_length, config.text_embed_dim),
                  timestep=torch.full((batch,), 500, device=device),
                  image_rotary_emb=rotary_embeddings(config, frames, height, width, device))
    conditions = {n: rand(batch, frames, config.in_channels, height, width) for n in names}
    return kwargs, conditions


class SavedBytes:
    """Bytes of distinct tensors autograd saves for backward while active."""

    def __init__(self):
        self.seen, self.total = set(), 0

    def pack(self, tensor):
        key = (tensor.untyped_storage().data_ptr(), tensor.untyped_storage().nbytes())
        if key not in self.seen:
            self.seen.add(key)
            self.total += key[1]
        return tensor

    def __enter__(self):
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)


def _step(model, kwargs, conditions):
    out = model(conditions=conditions, **kwargs).sample if conditions is not None else model(**kwargs).sample
    out.float().square().mean().backward()
    model.zero_grad(set_to_none=True)


def memory_mib(model, kwargs, conditions, device) -> float:
    """CPU: parameters + tensors saved for backward; CUDA: peak allocated during one fwd+bwd (MiB)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        _step(model, kwargs, conditions)
        return torch.cuda.max_memory_allocated() / 2**20
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    with SavedBytes() as saved:
        out = model(conditions=conditions, **kwargs).sample if conditions is not None else model(**kwargs).sample
    out.float().square().mean().backward()
    model.zero_grad(set_to_none=True)
    return (params + saved.total) / 2**20


def measure_all(cases: list[tuple], repeats: int, device) -> list[dict]:
    """Fwd+bwd time (minimum over ``repeats``, models interleaved so load spikes hit all alike) and memory."""
    for model, kwargs, conds in cases:
        _step(model, kwargs, conds)  # warm-up
    times = [[] for _ in cases]
    for _ in range(repeats):
        for i, (model, kwargs, conds) in enumerate(cases):
            times[i].append(time_call(lambda: _step(model, kwargs, conds), device))
    return [{"seconds": min(t), "seconds_median": statistics.median(t),
             "memory_mib": memory_mib(m, k, c, device),
             "params_m": sum(p.numel() for p in m.parameters()) / 1e6} for t, (m, k, c) in zip(times, cases)]


def bench_tiny(config_path: str, repeats: int, frames: int, height: int, width: int, batch: int) -> list[dict]:
    """Rows for the base transformer and the condition model with 0, 1 and 3 conditions."""
    cfg = load_motion_config(config_path)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    base = tiny_base_transformer(cfg.model.tiny, (frames - 1) * 4 + 1, height * 8, width * 8).to(device)
    kwargs, _ = _inputs(base.config, batch, frames, height, width, [], device, torch.float32)
    labels, cases = [("base CogVideoXTransformer3DModel (all trainable)", 0)], [(base, kwargs, None)]
    all_names = ["hand_keypoints", "depth", "seg_mask"]
    for k in (0, 1, 3):
        names = all_names[:k]
        model = CogVideoXConditionTransformer.from_base(base, names, cfg.model.num_condition_blocks).to(device)
        model.set_trainable(train_base=(k == 0))
        kwargs, conds = _inputs(model.config, batch, frames, height, width, names, device, torch.float32)
        labels.append(("condition model, base trainable (no branch)" if k == 0 else "condition model, base frozen", k))
        cases.append((model, kwargs, conds if k else None))
    rows = [{"model": label, "conditions": k, **m} for (label, k), m in zip(labels, measure_all(cases, repeats, device))]
    ref = rows[0]
    for row in rows:
        row["time_ratio"] = row["seconds"] / ref["seconds"]
        row["memory_ratio"] = row["memory_mib"] / ref["memory_mib"]
    return rows


def _zero2_offload_engine(model, batch: int = 1):
    """DeepSpeed ZeRO-2 in this one process, optimizer states on the CPU (DeepSpeedCPUAdam), bf16."""
    import deepspeed

    for key, value in (("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29512"), ("RANK", "0"), ("WORLD_SIZE", "1"),
                       ("LOCAL_RANK", "0")):
        os.environ.setdefault(key, value)
    deepspeed.init_distributed()
    config = {"train_micro_batch_size_per_gpu": batch, "gradient_accumulation_steps": 1, "bf16": {"enabled": True},
              "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu", "pin_memory": True}},
              "optimizer": {"type": "AdamW", "params": {"lr": 1e-4, "betas": [0.9, 0.95], "weight_decay": 1e-3}}}
    engine, *_ = deepspeed.initialize(model=model, model_parameters=model.branch_parameters(), config=config)
    return engine


def real_size_model(device, num_condition_blocks: int = 12) -> CogVideoXConditionTransformer:
    """The 5B-I2V architecture + branch (3 conditions) with random weights, made on ``device`` in bf16 directly."""
    with build_on(device, torch.bfloat16):
        return CogVideoXConditionTransformer(condition_names=["hand_keypoints", "depth", "seg_mask"],
                                             num_condition_blocks=num_condition_blocks, **COGVIDEOX_5B_I2V)


def bench_real(num_condition_blocks: int = 12, gradient_checkpointing: bool = True,
               zero2_offload: bool = False, batch: int = 1) -> dict:
    """One training step of the 5B-I2V architecture + branch (random bf16 weights) at 49x480x720 on CUDA, with a
    micro-batch of ``batch`` clips: AdamW with fp32 branch weights, or DeepSpeed ZeRO-2 with the optimizer
    offloaded to the CPU (bf16 branch)."""
    if not torch.cuda.is_available():
        raise DataError(None, "--real builds the 5B-I2V architecture: it needs a CUDA GPU")
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = real_size_model(device, num_condition_blocks)
    model.set_trainable(train_base=False)
    if gradient_checkpointing:
        model.enable_gradient_checkpointing()
    kwargs, conds = _inputs(model.config, batch, 13, 60, 90, model.config.condition_names, device, torch.bfloat16)
    if zero2_offload:
        engine = _zero2_offload_engine(model, batch)

        def train_step():
            loss = engine(conditions=conds, **kwargs).sample.float().square().mean()
            engine.backward(loss)
            engine.step()
    else:
        for p in model.branch_parameters():
            p.data = p.data.float()
        optimizer = torch.optim.AdamW(model.branch_parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=1e-3)

        def train_step():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = model(conditions=conds, **kwargs).sample
            out.float().square().mean().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    torch.cuda.reset_peak_memory_stats()
    times = [time_call(train_step, device) for _ in range(3)]
    return {"device": torch.cuda.get_device_name(), "batch": batch, "gradient_checkpointing": gradient_checkpointing,
            "optimizer": "deepspeed zero2, cpu offload" if zero2_offload else "torch AdamW", "step_seconds_first": times[0],
            "step_seconds_median_last2": statistics.median(times[1:]),
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
            "params_b": sum(p.numel() for p in model.parameters()) / 1e9,
            "trainable_params_b": sum(p.numel() for p in model.branch_parameters()) / 1e9}


def markdown(rows: list[dict]) -> str:
    lines = ["| model | conditions | fwd+bwd s (min) | time / base | memory MiB | memory / base |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['conditions']} | {r['seconds']:.4f} | {r['time_ratio']:.2f} | "
                     f"{r['memory_mib']:.2f} | {r['memory_ratio']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/motion/tiny.yaml")
    parser.add_argument("--real", action="store_true", help="5B architecture, bf16, 49x480x720, one step (GPU)")
    parser.add_argument("--no-gradient-checkpointing", action="store_true", help="--real without checkpointing")
    parser.add_argument("--zero2-offload", action="store_true",
                        help="--real with DeepSpeed ZeRO-2, optimizer offloaded to the CPU (one GPU)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--latent", type=int, nargs=3, default=(3, 4, 6), metavar=("F", "H", "W"),
                        help="latent frames/height/width of the tiny run (default: 9x32x48 video)")
    parser.add_argument("--batch", type=positive_int, default=1, help="micro-batch (tiny and --real)")
    parser.add_argument("--out", default="outputs/bench/motion.json")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging; tracebacks of errors")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    if args.real:
        result = {"real": bench_real(gradient_checkpointing=not args.no_gradient_checkpointing,
                                     zero2_offload=args.zero2_offload, batch=args.batch)}
        logger.info("%s", json.dumps(result, indent=2))
    else:
        rows = bench_tiny(args.config, args.repeats, *args.latent, args.batch)
        result = {"tiny": rows, "latent": list(args.latent), "threads": torch.get_num_threads()}
        logger.info("\n%s", markdown(rows))
    write_json(args.out, result)


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
