"""Shared fixtures. Tests that need ../shared/samples skip (with the reason) when it is absent."""
from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

from data_tools.io.cli import shared_samples_dir  # noqa: E402

SAMPLE_DIR = shared_samples_dir()


@pytest.fixture(scope="session")
def sample_dir() -> str:
    """The real DexYCB sample folder (../shared/samples/dexycb_val)."""
    if SAMPLE_DIR is None:
        pytest.skip("../shared/samples/dexycb_val is absent (set PAM_SHARED_DIR to point at shared/)")
    return SAMPLE_DIR


def torchrun(nproc: int = 2) -> list[str]:
    """``torchrun --standalone --nproc_per_node N`` as a command prefix: the rendezvous picks a free port, so
    parallel test runs on one machine never collide on a fixed ``--master_port``."""
    import sys

    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]


def small_grasp(name: str = "grasp", seed: int = 1, frames: int = 9, height: int = 32, width: int = 48):
    """A procedural-hand grasp of the built-in gelatin box: ``(trajectory, hand model)``."""
    from data_tools.pose.objects import builtin_object
    from data_tools.pose.procedural_hand import procedural_hand
    from data_tools.pose.trajectory import generate_grasp_trajectory

    hand = procedural_hand()
    return generate_grasp_trajectory(hand, builtin_object("gelatin_box"), "gelatin_box", num_frames=frames,
                                     height=height, width=width, seed=seed, name=name), hand
