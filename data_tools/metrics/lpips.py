"""LPIPS (Zhang et al. 2018, v0.1) with its AlexNet / VGG16 backbones defined here, weights from local files.

Weights come either from one safetensors file written by ``LPIPS.save`` or from the two original files:
the backbone's torchvision state dict (``features.N.*`` keys, e.g. ``alexnet-owt-7be5be79.pth``) and the
LPIPS linear heads (``lin{k}.model.1.weight`` keys, e.g. ``lpips/weights/v0.1/alex.pth``). Nothing is
downloaded; a missing file is a DataError naming it.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from data_tools.io.atomic import atomic_path
from data_tools.maps.bundle import to_model_range
from data_tools.errors import DataError

logger = logging.getLogger(__name__)

# Layer specs in torchvision's ``features`` indexing: (out_channels, kernel, stride, padding) convs, "M" pools.
_ALEX = [(64, 11, 4, 2), "R", "M", (192, 5, 1, 2), "R", "M", (384, 3, 1, 1), "R", (256, 3, 1, 1), "R",
         (256, 3, 1, 1), "R"]
_VGG16 = []
for _width, _n in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
    _VGG16 += [(_width, 3, 1, 1), "R"] * _n + ["M"]
BACKBONES = {
    # name: (layer spec, indices whose outputs are compared, channels there)
    "alex": (_ALEX, (1, 4, 7, 9, 11), (64, 192, 384, 256, 256)),
    "vgg16": (_VGG16[:-1], (3, 8, 15, 22, 29), (64, 128, 256, 512, 512)),
}
# Input normalisation of the LPIPS "scaling layer" (inputs in [-1, 1]).
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


@dataclasses.dataclass
class LPIPSConfig:
    """``weights``: one combined safetensors file, or [backbone file, linear-heads file]."""

    weights: list[str] | None = None
    backbone: str = "alex"
    batch_size: int = 8


class LPIPS(nn.Module):
    """Learned perceptual distance: unit-normalised backbone features, squared differences, 1x1 heads."""

    def __init__(self, backbone: str = "alex"):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {backbone!r}")
        spec, self.taps, channels = BACKBONES[backbone]
        self.backbone = backbone
        layers, in_ch = [], 3
        for item in spec:
            if item == "R":
                layers.append(nn.ReLU())
            elif item == "M":
                layers.append(nn.MaxPool2d(kernel_size=3 if backbone == "alex" else 2, stride=2))
            else:
                out_ch, k, s, p = item
                layers.append(nn.Conv2d(in_ch, out_ch, k, s, p))
                in_ch = out_ch
        self.net = nn.Sequential(*layers)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in channels)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats, x = [], (x - self.shift) / self.scale
        for i, layer in enumerate(self.net):
            x = layer(x)
            if i in self.taps:
                feats.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
            if i == self.taps[-1]:
                break
        return feats

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Distance per image of ``(N, 3, H, W)`` tensors in [-1, 1] -> ``(N,)``."""
        total = 0
        for lin, fx, fy in zip(self.lins, self._features(x), self._features(y)):
            total = total + lin((fx - fy) ** 2).mean(dim=(2, 3))
        return total.flatten()

    # ------------------------------------------------------------------ weights
    def save(self, path: str | os.PathLike) -> None:
        """Write every weight (backbone + heads) to one safetensors file, atomically."""
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in self.state_dict().items()}, tmp,
                      metadata={"backbone": self.backbone})

    @classmethod
    def load(cls, weights: str | os.PathLike | Sequence[str | os.PathLike] | None, backbone: str = "alex",
             device: str | torch.device = "cpu") -> "LPIPS":
        """Build the network and load ``weights`` (see module docstring); DataError when absent or incomplete."""
        if not weights:
            raise DataError(None, "lpips.weights is not set: give the LPIPS weights (one safetensors file from "
                                  "LPIPS.save, or [backbone .pth, linear-heads .pth])")
        paths = [weights] if isinstance(weights, (str, os.PathLike)) else list(weights)
        model, state = cls(backbone), {}
        for path in paths:
            state.update(_read_state(os.fspath(path)))
        expected = set(model.state_dict())
        missing = sorted(expected - set(state))
        if missing:
            raise DataError(os.fspath(paths[-1]), f"LPIPS weights lack {len(missing)} tensor(s), e.g. {missing[:3]} "
                                                  f"(backbone '{backbone}')")
        try:
            model.load_state_dict({k: state[k] for k in expected})
        except RuntimeError as exc:
            raise DataError(os.fspath(paths[-1]), f"LPIPS weights do not fit backbone '{backbone}': {exc}") from None
        return model.to(device)

    @torch.no_grad()
    def video(self, generated: np.ndarray, reference: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """Per-frame LPIPS of two uint8 ``(T, H, W, 3)`` videos -> ``(T,)``."""
        if generated.shape != reference.shape:
            raise ValueError(f"generated {generated.shape} and reference {reference.shape} differ in shape")
        device = self.shift.device
        out = []
        for start in range(0, len(generated), batch_size):
            x = to_model_range(generated[start:start + batch_size]).to(device)
            y = to_model_range(reference[start:start + batch_size]).to(device)
            out.append(self(x, y).float().cpu())
        return torch.cat(out).numpy().astype(np.float64)


_LIN_KEY = re.compile(r"^lin(\d)\.model\.1\.weight$")


def _read_state(path: str) -> dict[str, torch.Tensor]:
    """Read one weight file and rename torchvision / lpips keys to this module's names."""
    if not os.path.isfile(path):
        raise DataError(path, "LPIPS weight file does not exist")
    try:
        raw = load_file(path) if path.endswith(".safetensors") else torch.load(path, map_location="cpu",
                                                                               weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is bad input
        raise DataError(path, f"cannot read LPIPS weights ({exc})") from None
    state = {}
    for key, value in raw.items():
        key = key.removeprefix("module.")
        if key.startswith("features."):
            state["net." + key[len("features."):]] = value
        elif _LIN_KEY.match(key):
            state[f"lins.{_LIN_KEY.match(key)[1]}.weight"] = value
        elif key.startswith(("net.", "lins.")):
            state[key] = value
    if not state:
        raise DataError(path, "no LPIPS backbone (features.*) or head (lin*.model.1.weight) tensors found")
    return state
