"""Mask IoU of hand / object / foreground regions between two coloured segmentation masks (ADE20K palette)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from data_tools.maps.segmentation import BACKGROUND_CLASS, HAND_CLASS, classes_from_colors

REGIONS = ("hand", "object", "foreground")


def region_masks(classes: np.ndarray, hand_class: int = HAND_CLASS,
                 background_class: int = BACKGROUND_CLASS) -> dict[str, np.ndarray]:
    """Boolean hand / object (any other non-background class) / foreground masks of a class map."""
    hand = classes == hand_class
    foreground = classes != background_class
    return {"hand": hand, "object": foreground & ~hand, "foreground": foreground}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (NaN when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else float("nan")


def mask_iou(pred_rgb: np.ndarray, target_rgb: np.ndarray, candidates: Sequence[int] | None = None) -> dict[str, float]:
    """IoU per region between two coloured masks ``(..., H, W, 3)`` (frames pooled).

    Colours are mapped back to classes by nearest palette colour; pass ``candidates`` (the class ids that can
    occur, including background) for compressed videos.
    """
    pred_rgb, target_rgb = np.asarray(pred_rgb), np.asarray(target_rgb)
    if pred_rgb.shape != target_rgb.shape:
        raise ValueError(f"masks differ in shape: {pred_rgb.shape} vs {target_rgb.shape}")
    pred = region_masks(classes_from_colors(pred_rgb, candidates=candidates))
    target = region_masks(classes_from_colors(target_rgb, candidates=candidates))
    return {f"iou_{name}": iou(pred[name], target[name]) for name in REGIONS}
