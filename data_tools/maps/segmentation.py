"""Segmentation masks: class ids <-> colours with the ADE20K palette, and the DexYCB label remap."""
from __future__ import annotations

import numpy as np

# ADE20K 150-class palette (RGB), plus black at index 150 used for background.
ADE20K_PALETTE = np.array([
    [120, 120, 120], [180, 120, 120], [6, 230, 230], [80, 50, 50], [4, 200, 3], [120, 120, 80], [140, 140, 140],
    [204, 5, 255], [230, 230, 230], [4, 250, 7], [224, 5, 255], [235, 255, 7], [150, 5, 61], [120, 120, 70],
    [8, 255, 51], [255, 6, 82], [143, 255, 140], [204, 255, 4], [255, 51, 7], [204, 70, 3], [0, 102, 200],
    [61, 230, 250], [255, 6, 51], [11, 102, 255], [255, 7, 71], [255, 9, 224], [9, 7, 230], [220, 220, 220],
    [255, 9, 92], [112, 9, 255], [8, 255, 214], [7, 255, 224], [255, 184, 6], [10, 255, 71], [255, 41, 10],
    [7, 255, 255], [224, 255, 8], [102, 8, 255], [255, 61, 6], [255, 194, 7], [255, 122, 8], [0, 255, 20],
    [255, 8, 41], [255, 5, 153], [6, 51, 255], [235, 12, 255], [160, 150, 20], [0, 163, 255], [140, 140, 140],
    [250, 10, 15], [20, 255, 0], [31, 255, 0], [255, 31, 0], [255, 224, 0], [153, 255, 0], [0, 0, 255],
    [255, 71, 0], [0, 235, 255], [0, 173, 255], [31, 0, 255], [11, 200, 200], [255, 82, 0], [0, 255, 245],
    [0, 61, 255], [0, 255, 112], [0, 255, 133], [255, 0, 0], [255, 163, 0], [255, 102, 0], [194, 255, 0],
    [0, 143, 255], [51, 255, 0], [0, 82, 255], [0, 255, 41], [0, 255, 173], [10, 0, 255], [173, 255, 0],
    [0, 255, 153], [255, 92, 0], [255, 0, 255], [255, 0, 245], [255, 0, 102], [255, 173, 0], [255, 0, 20],
    [255, 184, 184], [0, 31, 255], [0, 255, 61], [0, 71, 255], [255, 0, 204], [0, 255, 194], [0, 255, 82],
    [0, 10, 255], [0, 112, 255], [51, 0, 255], [0, 194, 255], [0, 122, 255], [0, 255, 163], [255, 153, 0],
    [0, 255, 10], [255, 112, 0], [143, 255, 0], [82, 0, 255], [163, 255, 0], [255, 235, 0], [8, 184, 170],
    [133, 0, 255], [0, 255, 92], [184, 0, 255], [255, 0, 31], [0, 184, 255], [0, 214, 255], [255, 0, 112],
    [92, 255, 0], [0, 224, 255], [112, 224, 255], [70, 184, 160], [163, 0, 255], [153, 0, 255], [71, 255, 0],
    [255, 0, 163], [255, 204, 0], [255, 0, 143], [0, 255, 235], [133, 255, 0], [255, 0, 235], [245, 0, 255],
    [255, 0, 122], [255, 245, 0], [10, 190, 212], [214, 255, 0], [0, 204, 255], [20, 0, 255], [255, 255, 0],
    [0, 153, 255], [0, 41, 255], [0, 255, 204], [41, 0, 255], [41, 255, 0], [173, 0, 255], [0, 245, 255],
    [71, 0, 255], [122, 0, 255], [0, 255, 184], [0, 92, 255], [184, 255, 0], [0, 133, 255], [255, 214, 0],
    [25, 194, 194], [102, 255, 0], [92, 0, 255], [0, 0, 0],
], dtype=np.uint8)

HAND_CLASS = 149        # DexYCB label 255 (hand)
BACKGROUND_CLASS = 150  # DexYCB label 0 (background); coloured black
DEXYCB_HAND_LABEL = 255


def dexycb_labels_to_classes(labels: np.ndarray) -> np.ndarray:
    """Map DexYCB label values to palette classes: 255 (hand) -> 149, 0 (background) -> 150, YCB ids kept."""
    labels = np.asarray(labels)
    classes = labels.astype(np.int64, copy=True)
    classes[labels == DEXYCB_HAND_LABEL] = HAND_CLASS
    classes[labels == 0] = BACKGROUND_CLASS
    return classes


def colorize_classes(classes: np.ndarray, palette: np.ndarray = ADE20K_PALETTE) -> np.ndarray:
    """Colour an integer class map of any shape ``(..., H, W)`` -> ``(..., H, W, 3)`` uint8 RGB (a table lookup)."""
    classes = np.asarray(classes)
    if classes.size and (classes.min() < 0 or classes.max() >= len(palette)):
        raise ValueError(f"class ids must lie in [0, {len(palette) - 1}], got [{classes.min()}, {classes.max()}]")
    return palette[classes]


def colorize_dexycb_labels(labels: np.ndarray) -> np.ndarray:
    """DexYCB ``seg`` labels -> coloured mask as the reference stores it."""
    return colorize_classes(dexycb_labels_to_classes(labels))


def classes_from_colors(image: np.ndarray, palette: np.ndarray = ADE20K_PALETTE, candidates=None) -> np.ndarray:
    """Invert ``colorize_classes``: nearest palette colour per pixel (robust to video compression).

    ``candidates`` restricts the search to some class ids (recommended for lossy inputs).
    """
    image = np.asarray(image)
    ids = np.arange(len(palette)) if candidates is None else np.asarray(candidates)
    colours = palette[ids].astype(np.int32)
    flat = image.reshape(-1, 3).astype(np.int32)
    best = np.zeros(len(flat), dtype=np.int64)
    best_dist = np.full(len(flat), np.iinfo(np.int64).max)
    for k, colour in enumerate(colours):  # loop over classes, vectorised over pixels
        dist = ((flat - colour) ** 2).sum(axis=1)
        closer = dist < best_dist
        best[closer], best_dist[closer] = k, dist[closer]
    return ids[best].reshape(image.shape[:-1])
