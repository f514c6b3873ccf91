"""Splitting work across processes: ``--shard i/n`` (or torchrun/accelerate's RANK/WORLD_SIZE), round robin."""
from __future__ import annotations

import os

from data_tools.errors import DataError


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``; None -> ``(RANK, WORLD_SIZE)`` from the environment (0/1)."""
    if text is None:
        return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
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
