"""Building modules with random weights directly on a device and in a dtype, with no fp32 CPU copy first.

The random real-size configs (``configs/*/random_real_size.yaml``, about 30 B parameters for sim2real) would take
minutes and over 100 GB of CPU memory if built on the CPU in fp32 and cast; built under ``build_on("cuda",
torch.bfloat16)`` each parameter is allocated once, on the GPU, in bf16, and initialised there.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch


def resolve_device(name: str) -> str:
    """``"auto"``: this process's GPU when there is one (``LOCAL_RANK`` under torchrun / accelerate launch, else the
    current device), else cpu; any other device name as it is."""
    if name == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        if "LOCAL_RANK" in os.environ:
            return f"cuda:{int(os.environ['LOCAL_RANK']) % torch.cuda.device_count()}"
        return f"cuda:{torch.cuda.current_device()}"
    return name


@contextlib.contextmanager
def build_on(device: str | torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Modules constructed inside get their parameters and buffers on ``device`` (``"auto"`` allowed) in ``dtype``
    (every floating tensor made without an explicit dtype): no fp32 CPU copy, also for ``device="meta"``."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(resolve_device(str(device))):
            yield
    finally:
        torch.set_default_dtype(previous)


def random_init(init_device: str | None, dtype: torch.dtype | None = None):
    """``build_on(init_device, dtype)`` for a config's ``tiny.init_device``; None: no change (the seeded fp32 CPU
    build, whose values the tiny configs' trained assets were made from)."""
    if init_device is None:
        return contextlib.nullcontext()
    return build_on(init_device, dtype or torch.float32)
