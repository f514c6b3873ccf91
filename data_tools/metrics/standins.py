"""Tiny randomly initialised stand-ins for the metric networks, so the evaluation runs end to end on CPU.

They share the real networks' interfaces (the I3D TorchScript call signature, the LPIPS weight layout, the
hand-estimator adapter's TorchScript contract) but their numbers mean nothing: use them for tests and smoke
runs only. ``python -m data_tools.metrics.standins --output DIR`` writes ``tiny_i3d.pt``,
``tiny_lpips_alex.safetensors`` and ``tiny_hand_estimator.pt``.
"""
from __future__ import annotations

import argparse
import os
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from data_tools.io.atomic import atomic_path
from data_tools.metrics.lpips import LPIPS


class TinyVideoDetector(nn.Module):
    """I3D stand-in: uint8 ``(B, 3, T, H, W)`` + ``rescale / resize / return_features`` -> ``(B, D)``."""

    def __init__(self, features: int = 8):
        super().__init__()
        self.conv = nn.Conv3d(3, 6, kernel_size=3, padding=1)
        self.head = nn.Linear(6 * 2 * 4 * 4, features)

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        x = x.float()
        if rescale:
            x = x / 127.5 - 1.0
        if resize:
            x = F.interpolate(x, size=(x.shape[2], 16, 16), mode="trilinear", align_corners=False)
        x = F.adaptive_avg_pool3d(torch.relu(self.conv(x)), (2, 4, 4))
        feats = self.head(x.flatten(1))
        return feats if return_features else feats.softmax(dim=1)


class TinyHandEstimator(nn.Module):
    """Hand-estimator stand-in: ``(B, 3, H, W)`` -> (joints_2d in [0, 1] ``(B, 21, 2)``, joints_3d ``(B, 21, 3)``)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, kernel_size=5, stride=4, padding=2)
        self.head = nn.Linear(8 * 4 * 4, 21 * 5)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(F.adaptive_avg_pool2d(torch.relu(self.conv(x)), 4).flatten(1)).view(-1, 21, 5)
        return torch.sigmoid(out[..., :2]), out[..., 2:]


def _save_script(module: nn.Module, path: str) -> str:
    with atomic_path(path) as tmp:
        torch.jit.script(module.eval()).save(tmp)
    return path


def write_standins(output: str | os.PathLike, seed: int = 0) -> dict[str, str]:
    """Write the three stand-in weight files into ``output``; returns ``{name: path}``."""
    output = os.fspath(output)
    os.makedirs(output, exist_ok=True)
    torch.manual_seed(seed)
    paths = {"fvd": _save_script(TinyVideoDetector(), os.path.join(output, "tiny_i3d.pt")),
             "estimator": _save_script(TinyHandEstimator(), os.path.join(output, "tiny_hand_estimator.pt"))}
    lpips = LPIPS("alex")
    for lin in lpips.lins:
        lin.weight.data.abs_()  # real LPIPS heads are non-negative
    paths["lpips"] = os.path.join(output, "tiny_lpips_alex.safetensors")
    lpips.save(paths["lpips"])
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="outputs/eval/tiny_weights", help="folder for the stand-in files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-v", "--verbose", action="store_true", help="tracebacks of errors")
    args = parser.parse_args(argv)
    for name, path in write_standins(args.output, args.seed).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
