"""Background / hand / object regions of generated frames, for the mask IoU against the conditioning seg mask.

Generated frames carry no labels. A small pixel classifier (dilated 3x3 convolutions, 33x33 context) fitted on
ground-truth frames and their seg masks labels them, and ``region_iou`` compares the labelled regions. The
procedural world (``data_tools.pose.toy_world``) fits one on its real frames; its accuracy on held-out ground-truth
frames bounds what the IoU of generated frames can show.
"""
from __future__ import annotations

import logging
import os
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from data_tools.io.atomic import atomic_path, write_json
from data_tools.errors import DataError, require_file
from data_tools.metrics.segmentation import iou
from data_tools.pose.objects import BUILTIN_OBJECTS
from data_tools.maps.segmentation import BACKGROUND_CLASS, HAND_CLASS, classes_from_colors

logger = logging.getLogger(__name__)

REGION_NAMES = ("background", "hand", "object")
OBJECT_CLASSES = sorted({spec[2] for spec in BUILTIN_OBJECTS.values()})
SEG_CANDIDATES = [HAND_CLASS, BACKGROUND_CLASS] + OBJECT_CLASSES


def region_labels(seg_rgb: np.ndarray) -> np.ndarray:
    """Coloured seg mask ``(..., H, W, 3)`` -> region ids (0 background, 1 hand, 2 object)."""
    classes = classes_from_colors(seg_rgb, candidates=SEG_CANDIDATES)
    return np.where(classes == HAND_CLASS, 1, np.where(classes == BACKGROUND_CLASS, 0, 2)).astype(np.int64)


def region_psnr(generated: np.ndarray, reference: np.ndarray, regions: np.ndarray) -> dict[str, float]:
    """PSNR (dB) of uint8 frames ``(..., H, W, 3)`` over the whole frame and over the pixels of each region present
    (``regions``: ``(..., H, W)`` ids of ``REGION_NAMES``), the squared error pooled over all frames."""
    err = ((generated.astype(np.float64) - reference) ** 2).mean(-1)
    with np.errstate(divide="ignore"):  # identical pixels: inf dB
        out = {"frame": float(10 * np.log10(255.0 ** 2 / err.mean()))}
        for rid, name in enumerate(REGION_NAMES):
            if (regions == rid).any():
                out[name] = float(10 * np.log10(255.0 ** 2 / err[regions == rid].mean()))
    return out


class PixelSegmenter(torch.nn.Module):
    """Per-pixel background / hand / object classifier: 3x3 convolutions with growing dilation (1, 2, 4, 8, 1:
    a 33x33 pixel context, enough to tell a skin-coloured hand from the wooden table by its shape)."""

    def __init__(self, channels: int = 32, dilations: Sequence[int] = (1, 2, 4, 8, 1)):
        super().__init__()
        convs, c_in = [], 3
        for d in dilations:
            convs += [torch.nn.Conv2d(c_in, channels, 3, padding=d, dilation=d), torch.nn.GELU()]
            c_in = channels
        self.body = torch.nn.Sequential(*convs, torch.nn.Conv2d(channels, len(REGION_NAMES), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 3, H, W)`` of images ``(B, 3, H, W)`` in [0, 1]."""
        return self.body(x)

    @torch.no_grad()
    def predict(self, frames: np.ndarray, batch: int = 16) -> np.ndarray:
        """Region ids ``(T, H, W)`` of uint8 frames ``(T, H, W, 3)``."""
        out = []
        for i in range(0, len(frames), batch):
            x = torch.from_numpy(np.ascontiguousarray(frames[i:i + batch])).permute(0, 3, 1, 2).float() / 255
            out.append(self.eval()(x).argmax(1).numpy())
        return np.concatenate(out)


def fit_segmenter(frames: np.ndarray, labels: np.ndarray, steps: int = 600, batch: int = 16, lr: float = 3e-3,
                  seed: int = 0, progress: bool = True) -> PixelSegmenter:
    """Fit a ``PixelSegmenter`` on frames ``(N, H, W, 3)`` and region ids ``(N, H, W)`` (class-balanced loss)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = PixelSegmenter()
    counts = np.bincount(labels.reshape(-1), minlength=len(REGION_NAMES)).astype(np.float64)
    weight = torch.tensor((counts.sum() / np.maximum(counts, 1)) ** 0.5, dtype=torch.float32)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    x_all = torch.from_numpy(frames).permute(0, 3, 1, 2)
    y_all = torch.from_numpy(labels)
    for _ in tqdm(range(steps), desc="fit segmenter", disable=not progress):
        idx = torch.from_numpy(rng.integers(0, len(frames), batch))
        x = x_all[idx].float() / 255
        if rng.random() < 0.5:  # generated frames are blurrier than renders
            x = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
        loss = torch.nn.functional.cross_entropy(net(x), y_all[idx], weight=weight / weight.mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def region_iou(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """IoU of the hand, object and foreground regions between two region-id maps (frames pooled)."""
    return {"iou_hand": iou(pred == 1, target == 1), "iou_object": iou(pred == 2, target == 2),
            "iou_foreground": iou(pred > 0, target > 0)}


def split_frames(root: str, split: str, size, num_frames: int | None = None, limit: int | None = None):
    """Real frames ``(N, H, W, 3)`` and their region ids ``(N, H, W)`` of a processed split."""
    from data_tools.datasets.hoi_dataset import HOISplit

    ds = HOISplit(root, split, ["seg_mask"], num_frames, tuple(size))
    n = len(ds) if limit is None else min(limit, len(ds))
    items = [ds[i] for i in range(n)]
    return (np.concatenate([b.video for b in items]),
            np.concatenate([region_labels(b.conditions["seg_mask"]) for b in items]))


def save_segmenter(net: PixelSegmenter, path: str) -> str:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tmp)
    return path


def load_segmenter(path: str) -> PixelSegmenter:
    from safetensors.torch import load_file

    net = PixelSegmenter()
    try:
        net.load_state_dict(load_file(require_file(path, "segmenter weights")))
    except (RuntimeError, OSError) as exc:
        raise DataError(path, f"not PixelSegmenter weights: {exc}") from None
    return net.eval()


def segmentation_report(run_dirs: Sequence[str], net: PixelSegmenter, output: str | None = None) -> list[dict]:
    """Mask IoU of generated vs conditioning regions per run folder of ``motion_gen.evaluate`` (per-sample IoU,
    averaged); also the segmenter on the reference videos (its own accuracy). For videos of 2+ frames with a known
    reference, also the PSNR of each ground-truth region over frames 1+ (``psnr_background`` / ``_hand`` /
    ``_object``: the frames an image-to-video model predicts; squared error pooled over a sample's frames, dB
    averaged over the samples showing the region), and each sample's values (``per_sample``). Writes ``<output>``
    (json)."""
    from data_tools.metrics.evaluation import load_run
    from data_tools.io.video_io import read_video

    rows, reference_done = [], {}
    for run_dir in run_dirs:
        run = load_run(run_dir)
        per = []
        for record in tqdm(run.records, desc=f"seg IoU [{run.label}]"):
            generated = read_video(run.path(record, "generated"))
            t, h, w = generated.shape[:3]
            mode = record.get("resize_mode", "crop")
            seg = read_video(os.path.join(run.path(record, "clip_dir"), "seg_mask.mp4"), t, (h, w), mode, "nearest")
            target = region_labels(seg)
            per.append({"name": record.get("name"), **region_iou(net.predict(generated), target)})
            ref_path = run.path(record, "reference")
            if ref_path:
                real = read_video(ref_path, t, (h, w), mode, "area")
                if t > 1:
                    per[-1].update({f"psnr_{k}": v for k, v in
                                    region_psnr(generated[1:], real[1:], target[1:]).items() if k != "frame"})
                if ref_path not in reference_done:
                    reference_done[ref_path] = region_iou(net.predict(real), target)
        row = {"label": run.label, "conditions": run.conditions, "num_samples": len(per)}
        keys = dict.fromkeys(k for p in per for k in p if k != "name")
        row.update({k: float(np.nanmean([p.get(k, np.nan) for p in per])) for k in keys})
        # per sample, for paired comparisons of runs (paired_difference); NaN (region absent) as null
        row["per_sample"] = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in p.items()}
                             for p in per]
        rows.append(row)
    if reference_done:
        values = list(reference_done.values())
        rows.append({"label": "ground truth (segmenter check)", "conditions": [], "num_samples": len(values),
                     **{k: float(np.nanmean([v[k] for v in values])) for k in values[0]}})
    if output:
        write_json(output, rows)
    return rows


def paired_difference(rows: Sequence[dict], label_a: str, label_b: str, key: str = "iou_hand",
                      resamples: int = 10000, seed: int = 0) -> dict:
    """``key`` of run ``label_a`` minus run ``label_b`` over the samples both scored (matched by name) in
    ``segmentation_report`` rows: mean difference, how many samples each run wins, and a seeded bootstrap 95%
    interval of the mean difference (samples resampled with replacement)."""
    by_label = {r["label"]: r for r in rows}
    for label in (label_a, label_b):
        if "per_sample" not in by_label.get(label, {}):
            raise DataError(label, "no per-sample values for this run label (run seg-iou again)")
        names = [p.get("name") for p in by_label[label]["per_sample"]]
        if None in names or len(set(names)) != len(names):
            raise DataError(label, "samples without unique names cannot be paired")
    b_values = {p["name"]: p.get(key) for p in by_label[label_b]["per_sample"]}
    pairs = [(p[key], b_values[p["name"]]) for p in by_label[label_a]["per_sample"]
             if p.get(key) is not None and b_values.get(p["name"]) is not None]
    if not pairs:
        raise DataError(label_a, f"no sample with '{key}' in both {label_a} and {label_b}")
    diff = np.array([a - b for a, b in pairs])
    means = diff[np.random.default_rng(seed).integers(0, len(diff), (resamples, len(diff)))].mean(axis=1)
    return {"a": label_a, "b": label_b, "key": key, "n": len(diff), "mean_a": float(np.mean([a for a, _ in pairs])),
            "mean_b": float(np.mean([b for _, b in pairs])), "mean_difference": float(diff.mean()),
            "a_wins": int((diff > 0).sum()), "b_wins": int((diff < 0).sum()),
            "ci95": [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]}
