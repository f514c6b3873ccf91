"""Fréchet Video Distance with the TorchScript I3D of the StyleGAN-V protocol, loaded from a local path.

Protocol (StyleGAN-V ``compute_fvd``): each video contributes one clip of ``num_frames`` consecutive frames
(every ``subsample_factor``-th frame, from ``start_frame``; too-short videos are skipped), passed as uint8
``(B, 3, T, H, W)`` to ``i3d_torchscript.pt`` called with ``rescale=True, resize=True, return_features=True``:
the network itself rescales to [-1, 1], resizes to 224x224 and returns its 400-d pre-softmax features.
Mean and covariance (1/N) of both feature sets give the Fréchet distance.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Iterable

import numpy as np
import torch

from data_tools.errors import DataError
from data_tools.metrics.frechet import FeatureStats, frechet_distance
from data_tools.io.video_io import resize_frames

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class FVDConfig:
    """FVD settings; ``detector_path`` points at the StyleGAN-V ``i3d_torchscript.pt``."""

    detector_path: str | None = None
    num_frames: int = 16            # frames per clip (FVD16); 0 = the whole video
    subsample_factor: int = 1       # take every k-th frame
    start_frame: int = 0
    size: list[int] | None = None   # optional (H, W) resize before the detector (which resizes to 224 itself)
    batch_size: int = 4
    rescale: bool = True
    resize: bool = True
    return_features: bool = True
    method: str = "eigh"            # Fréchet square root: "eigh" or "sqrtm" (StyleGAN-V)


def load_detector(path: str | os.PathLike | None, device: str | torch.device = "cpu") -> torch.jit.ScriptModule:
    """Load a TorchScript feature detector; a missing path is a DataError saying what to supply."""
    if not path:
        raise DataError(None, "fvd.detector_path is not set: point it at the StyleGAN-V I3D TorchScript file "
                              "(i3d_torchscript.pt)")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(path, "I3D TorchScript checkpoint does not exist (set fvd.detector_path to the local "
                              "i3d_torchscript.pt of the StyleGAN-V FVD protocol)")
    try:
        return torch.jit.load(path, map_location=device).eval()
    except (RuntimeError, ValueError) as exc:
        raise DataError(path, f"not a loadable TorchScript model ({exc})") from None


def fvd_clip(video: np.ndarray, num_frames: int = 16, subsample_factor: int = 1,
             start_frame: int = 0) -> np.ndarray | None:
    """The frames FVD looks at: ``num_frames`` frames every ``subsample_factor`` from ``start_frame``.

    Returns None when the video is too short (the protocol discards such videos). ``num_frames=0``: all frames.
    """
    video = np.asarray(video)
    indices = np.arange(start_frame, len(video), subsample_factor)
    if num_frames:
        if len(indices) < num_frames:
            return None
        indices = indices[:num_frames]
    return video[indices]


class VideoFeatureExtractor:
    """Batched video -> feature vectors through a TorchScript detector (I3D, or a tiny stand-in in tests)."""

    def __init__(self, config: FVDConfig, device: str | torch.device | None = None):
        self.config = config
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.detector = load_detector(config.detector_path, self.device)
        self.kwargs = dict(rescale=config.rescale, resize=config.resize, return_features=config.return_features)

    def clip(self, video: np.ndarray, name: str = "video") -> np.ndarray | None:
        """Select (and optionally resize) the clip of ``video``; None (with a warning) when too short."""
        c = self.config
        clip = fvd_clip(video, c.num_frames, c.subsample_factor, c.start_frame)
        if clip is None:
            logger.warning("%s: %d frames are too few for a %d-frame FVD clip (every %d from %d); skipped",
                           name, len(video), c.num_frames, c.subsample_factor, c.start_frame)
            return None
        if c.size:
            clip = resize_frames(clip, tuple(c.size), "resize", "area")
        return clip

    @torch.no_grad()
    def features(self, clips: np.ndarray) -> np.ndarray:
        """``(B, T, H, W, 3)`` uint8 clips -> ``(B, D)`` float64 features."""
        x = torch.from_numpy(np.ascontiguousarray(clips)).permute(0, 4, 1, 2, 3).contiguous().to(self.device)
        out = self.detector(x, **self.kwargs)
        return out.detach().double().cpu().reshape(len(clips), -1).numpy()


class FVDStats:
    """Accumulates detector features of a stream of videos in batches."""

    def __init__(self, extractor: VideoFeatureExtractor):
        self.extractor = extractor
        self.stats = FeatureStats()
        self.skipped: list[str] = []
        self._pending: list[np.ndarray] = []

    def add(self, video: np.ndarray, name: str = "video") -> None:
        clip = self.extractor.clip(video, name)
        if clip is None:
            self.skipped.append(name)
            return
        if self._pending and clip.shape != self._pending[0].shape:
            self.flush()  # clips of different sizes go to the detector in separate batches
        self._pending.append(clip)
        if len(self._pending) >= self.extractor.config.batch_size:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.stats.append(self.extractor.features(np.stack(self._pending)))
            self._pending = []

    @property
    def count(self) -> int:
        return self.stats.count + len(self._pending)

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        self.flush()
        return self.stats.mean_cov()


def compute_fvd(real_videos: Iterable[np.ndarray], generated_videos: Iterable[np.ndarray],
                extractor: VideoFeatureExtractor) -> dict:
    """FVD between two video streams; returns ``{"fvd", "num_real", "num_generated", "skipped"}``."""
    real, gen = FVDStats(extractor), FVDStats(extractor)
    for i, video in enumerate(real_videos):
        real.add(video, f"real[{i}]")
    for i, video in enumerate(generated_videos):
        gen.add(video, f"generated[{i}]")
    return fvd_from_stats(real, gen, extractor.config.method)


def fvd_from_stats(real: FVDStats, generated: FVDStats, method: str = "eigh") -> dict:
    """FVD of two filled ``FVDStats``; DataError when either has fewer than two clips."""
    for label, s in (("real", real), ("generated", generated)):
        if s.count < 2:
            raise DataError(None, f"FVD needs at least 2 {label} clips, got {s.count} "
                                  f"(skipped as too short: {len(s.skipped)})")
    value = frechet_distance(*generated.mean_cov(), *real.mean_cov(), method=method)
    return {"fvd": value, "num_real": real.stats.count, "num_generated": generated.stats.count,
            "skipped": len(real.skipped) + len(generated.skipped)}
