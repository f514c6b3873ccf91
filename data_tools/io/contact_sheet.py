"""Contact sheets: named videos side by side (columns), a few time steps (rows), written as one PNG."""
from __future__ import annotations

import os
from typing import Mapping

import cv2
import numpy as np

from data_tools.io.video_io import resample_indices, resize_frames, write_image

LABEL_HEIGHT = 22


def _label(text: str, width: int) -> np.ndarray:
    strip = np.full((LABEL_HEIGHT, width, 3), 32, np.uint8)
    cv2.putText(strip, text[: max(1, width // 8)], (4, LABEL_HEIGHT - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (235, 235, 235), 1, cv2.LINE_AA)
    return strip


def make_contact_sheet(columns: Mapping[str, np.ndarray], num_rows: int = 4, cell_height: int = 160,
                       gap: int = 2) -> np.ndarray:
    """Build an RGB sheet: one column per named video ``(T, H, W, 3)`` (or image ``(H, W, 3)``, shown on every
    row), ``num_rows`` time steps spread uniformly over each video, a label on top of each column."""
    if not columns:
        raise ValueError("contact sheet needs at least one column")
    blocks = []
    for name, arr in columns.items():
        arr = np.asarray(arr)
        video = np.repeat(arr[None], num_rows, axis=0) if arr.ndim == 3 else arr[resample_indices(len(arr), num_rows)]
        h, w = video.shape[1:3]
        cell_width = max(1, round(w * cell_height / h))
        cells = resize_frames(video, (cell_height, cell_width), mode="resize")
        rows = [_label(name, cell_width)]
        for cell in cells:
            rows += [np.zeros((gap, cell_width, 3), np.uint8), cell]
        blocks.append(np.concatenate(rows, axis=0))
        blocks.append(np.zeros((blocks[-1].shape[0], gap, 3), np.uint8))
    return np.concatenate(blocks[:-1], axis=1)


def write_contact_sheet(path: str | os.PathLike, columns: Mapping[str, np.ndarray], **kwargs) -> str:
    """Build a contact sheet (see ``make_contact_sheet``) and write it as a PNG atomically."""
    return write_image(path, make_contact_sheet(columns, **kwargs))


def make_mosaic(images: Mapping[str, np.ndarray], columns: int = 4, cell_height: int = 120, gap: int = 2) -> np.ndarray:
    """A grid of labelled images ``(H, W, 3)`` (``columns`` per row, each scaled to ``cell_height``; the cell width
    is the first image's aspect), row-major in the mapping's order."""
    if not images:
        raise ValueError("a mosaic needs at least one image")
    first = next(iter(images.values()))
    cell_width = max(1, round(first.shape[1] * cell_height / first.shape[0]))
    cells = [np.concatenate([_label(name, cell_width), resize_frames(np.asarray(img)[None], (cell_height, cell_width),
                                                                     mode="resize")[0]], axis=0)
             for name, img in images.items()]
    cells += [np.zeros_like(cells[0])] * (-len(cells) % columns)
    rows = [np.concatenate(sum(([c, np.zeros((c.shape[0], gap, 3), np.uint8)] for c in cells[i:i + columns]), [])[:-1],
                           axis=1) for i in range(0, len(cells), columns)]
    return np.concatenate(sum(([r, np.zeros((gap, r.shape[1], 3), np.uint8)] for r in rows), [])[:-1], axis=0)
