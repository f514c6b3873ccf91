"""Splitting work across processes: ``--shard i/n`` (or torchrun/accelerate's RANK/WORLD_SIZE), round robin."""
from __future__ import annotations

import os

from data_tools.errors import DataError


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``; None -> ``(RANK, WORLD_SIZE)`` from the environment (0/1)."""
    if text is None:
        rank, world = os.environ.get("RANK", "0"), os.environ.get("WORLD_SIZE", "1")
        if not (rank.isdigit() and world.isdigit() and int(rank) < int(world)):
            raise DataError(None, f"RANK={rank} WORLD_SIZE={world} in the environment: need whole numbers with "
                                  "0 <= RANK < WORLD_SIZE (or give --shard i/n)")
        return int(rank), int(world)
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise DataError(None, f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise DataError(None, f"--shard {text}: need 0 <= i < n")
    return i, n


def shard_indices(count: int, rank: int, world: int) -> list[int]:
    """Item indices of worker ``rank`` out of ``world`` over ``count`` items (round robin)."""
    return list(range(rank, count, max(1, world)))


def process_device(device: str | None, shard_index: int = 0) -> str | None:
    """This process's device: ``device`` when set; else with CUDA one GPU per process: ``LOCAL_RANK`` under
    torchrun/accelerate, otherwise the shard index (``--shard i/n`` processes started side by side), modulo the
    visible GPU count; None without CUDA (the caller's default)."""
    if device is not None:
        return device
    import torch

    if not torch.cuda.is_available():
        return None
    index = int(os.environ["LOCAL_RANK"]) if "LOCAL_RANK" in os.environ else shard_index
    return f"cuda:{index % torch.cuda.device_count()}"
