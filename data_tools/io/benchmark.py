"""Timing helpers for the bench scripts (CUDA-synchronised wall-clock seconds)."""
from __future__ import annotations

import time
from typing import Callable

import torch


def time_call(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of ``fn`` takes, synchronising CUDA before and after so queued kernels count."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def median_time(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = sorted(time_call(fn, device) for _ in range(repeats))
    return times[len(times) // 2]
