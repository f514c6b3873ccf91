"""Calibrate a hand-keypoint estimator on a real clip whose ground truth is only a keypoint-map video.

The ground-truth 2D joints are decoded from the map (``data_tools.maps.keypoints.decode_hand_keypoints``); the
estimator runs on the real video, and its joints are moved through the same time resampling and crop/resize that
turned the video's frames into the map's frames. The error it reports is the floor of the keypoint metric: what the
estimator alone gets wrong on real frames.

    python -m data_tools.metrics.calibration --video ../shared/samples/dexycb_val/val_video.mp4 \\
        --keypoint-map ../shared/samples/dexycb_val/val_hand_keypoints.mp4 --out outputs/calibration
"""
from __future__ import annotations

import argparse
import logging
import os
import time
from typing import Sequence

import cv2
import numpy as np

from data_tools.errors import DataError
from data_tools.io.atomic import write_json
from data_tools.io.video_io import RESIZE_MODES, read_video, resample_indices
from data_tools.maps.hand_joints import HandKeypoints, map_points, valid_joints
from data_tools.maps.keypoints import decode_hand_keypoints_video
from data_tools.metrics.keypoints import KeypointEstimator, keypoint_metrics

logger = logging.getLogger(__name__)


SKELETON_LEVEL = 40   # a map pixel brighter than this (max channel) is part of the drawn skeleton
FAR_PX = 100.0        # distances are capped here when averaged (a joint off the map counts as this far)
TIME_MAPPINGS = ("resample", "head")   # map frame i <- video frame resample_indices(T_video, T_map)[i], or i


def skeleton_distance_maps(keypoint_map: np.ndarray) -> np.ndarray:
    """Per frame, the distance (px) of every pixel to the nearest drawn skeleton pixel ``(T, H, W)`` (FAR_PX in
    frames where nothing is drawn)."""
    out = np.full(keypoint_map.shape[:3], FAR_PX, np.float32)
    for t, frame in enumerate(keypoint_map):
        drawn = frame.max(-1) > SKELETON_LEVEL
        if drawn.any():
            out[t] = cv2.distanceTransform((~drawn).astype(np.uint8), cv2.DIST_L2, 5)
    return out


def skeleton_distances(joints_2d: np.ndarray, distance_maps: np.ndarray) -> np.ndarray:
    """Distance of each valid joint ``(T, 21, 2)`` to its frame's drawn skeleton, capped at FAR_PX (off the map:
    FAR_PX), as a flat array: a palette-free lower bound of the joint error."""
    t, j = np.nonzero(valid_joints(joints_2d))
    xy = np.round(joints_2d[t, j]).astype(int)
    h, w = distance_maps.shape[1:]
    inside = (xy >= 0).all(1) & (xy[:, 0] < w) & (xy[:, 1] < h)
    d = np.full(len(t), FAR_PX)
    d[inside] = distance_maps[t[inside], xy[inside, 1], xy[inside, 0]]
    return np.minimum(d, FAR_PX)


def _summary(distances: np.ndarray) -> dict:
    return {"skeleton_distance_px": float(distances.mean()) if distances.size else float("nan"),
            "on_skeleton_3px": float((distances <= 3).mean()) if distances.size else float("nan")}


def _grid_fit(points, frames, distance_maps, scales_x, scales_y, offsets_x, offsets_y):
    """Best ``(score, scale_xy, offset_xy)`` over a grid; offsets are given per scale as functions of it."""
    h, w = distance_maps.shape[1:]
    best = (np.inf, None, None)
    for sx in scales_x:
        for sy in scales_y:
            ox, oy = offsets_x(sx), offsets_y(sy)
            x = np.round(points[:, 0] * sx)[None, None].astype(int) + ox[:, None, None]
            y = np.round(points[:, 1] * sy)[None, None].astype(int) + oy[None, :, None]
            inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
            d = np.where(inside, distance_maps[frames[None, None], y.clip(0, h - 1), x.clip(0, w - 1)], FAR_PX)
            score = np.minimum(d, FAR_PX).mean(-1)
            a, b = np.unravel_index(score.argmin(), score.shape)
            if score[a, b] < best[0]:
                best = (float(score[a, b]), np.array([sx, sy]), np.array([ox[a], oy[b]], np.float64))
    return best


def fit_axis_affine(joints_2d: np.ndarray, distance_maps: np.ndarray, scales=np.arange(0.5, 1.51, 0.05),
                    shift: int = 240, coarse_points: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(scale_xy, offset_xy)`` minimising the mean skeleton distance of ``joints * scale + offset``: a coarse grid
    (scales, offsets every 8 px within ``shift`` of centring the joints on the map; a subset of the joints), then a
    fine one around its best (scale steps of 0.01, 1 px; all joints)."""
    t, j = np.nonzero(valid_joints(joints_2d))
    points = joints_2d[t, j]
    h, w = distance_maps.shape[1:]
    pick = np.random.default_rng(seed).permutation(len(points))[:coarse_points]
    centre = lambda size, s, mean: round(size / 2 - s * mean)  # noqa: E731
    mx, my = points[:, 0].mean(), points[:, 1].mean()
    _, scale, offset = _grid_fit(points[pick], t[pick], distance_maps, scales, scales,
                                 lambda s: np.arange(-shift, shift + 1, 8) + centre(w, s, mx),
                                 lambda s: np.arange(-shift, shift + 1, 8) + centre(h, s, my))
    fine = lambda c: np.arange(c - 0.05, c + 0.051, 0.01)  # noqa: E731
    near = lambda s, s0, o0, m: np.arange(-10, 11) + round(o0 - (s - s0) * m)  # noqa: E731
    _, scale, offset = _grid_fit(points, t, distance_maps, fine(scale[0]), fine(scale[1]),
                                 lambda s: near(s, scale[0], offset[0], mx), lambda s: near(s, scale[1], offset[1], my))
    return scale, offset


def calibrate(video: np.ndarray, keypoint_map: np.ndarray, estimator: KeypointEstimator,
              resize_modes: Sequence[str] = RESIZE_MODES, fit_affine: bool = False) -> dict:
    """The estimator on ``video`` against a keypoint-map video of it.

    For each time mapping (``TIME_MAPPINGS``) and resize mode: the palette-free skeleton distance, and the keypoint
    metrics against the joints decoded from the map (meaningful only when the map uses our palette: see
    ``decode_hand_keypoints``; frames not fully decoded are left out, and without any the keypoint metrics are
    NaN). ``hand_found``: the fraction of frames where the estimator finds a hand. The best-fitting mapping is
    reported at the top level; ``fit_affine`` also fits a free
    per-axis scale and offset (for maps made by an unknown transform: optimistic, as it is fitted on the same data).
    """
    t, h, w = keypoint_map.shape[:3]
    decoded = decode_hand_keypoints_video(keypoint_map)
    decoded[~valid_joints(decoded).all(-1)] = -1.0   # only frames whose 21 joints were all decoded are ground truth
    distance_maps = skeleton_distance_maps(keypoint_map)
    results, seconds = {}, []
    for timing in TIME_MAPPINGS:
        if timing == "head" and len(video) < t:
            continue
        idx = resample_indices(len(video), t) if timing == "resample" else np.arange(t)
        start = time.perf_counter()
        pred = estimator.estimate(video[idx])
        seconds.append((time.perf_counter() - start) / t)
        found = float(valid_joints(pred.joints_2d).all(-1).mean())
        for mode in resize_modes:
            moved = map_points(pred.joints_2d, video.shape[1:3], (h, w), mode)
            results[f"{timing}/{mode}"] = {**keypoint_metrics(HandKeypoints(moved), HandKeypoints(decoded)),
                                           **_summary(skeleton_distances(moved, distance_maps)), "hand_found": found}
        if fit_affine:
            scale, offset = fit_axis_affine(pred.joints_2d, distance_maps)
            moved = np.where(valid_joints(pred.joints_2d)[..., None], pred.joints_2d * scale + offset, -1.0)
            results[f"{timing}/affine"] = {**keypoint_metrics(HandKeypoints(moved), HandKeypoints(decoded)),
                                           **_summary(skeleton_distances(moved, distance_maps)), "hand_found": found,
                                           "scale_xy": scale.tolist(), "offset_xy": offset.tolist()}
    def rank(key):   # nearest the drawn skeleton; ties broken by the error against the decoded joints
        error = results[key]["mpjpe_2d_px"]
        return results[key]["skeleton_distance_px"], error if np.isfinite(error) else np.inf

    best = min(results, key=rank)
    return {"mapping": best, **results[best], "by_mapping": results, "frames": t,
            "frames_decoded": int(valid_joints(decoded).all(-1).sum()),
            "video_shape": list(video.shape[:3]), "map_shape": [t, h, w],
            "estimator_s_per_frame": round(float(np.mean(seconds)), 4)}


def calibrate_clip(clip_dir: str, estimator: KeypointEstimator) -> dict:
    """Estimator error on a processed clip's ``video.mp4`` against its ``hand_joints.npz`` (2D and, when present,
    3D: ``mpjpe_3d_mm`` root-relative, ``pa_mpjpe_3d_mm`` Procrustes-aligned)."""
    video = read_video(os.path.join(clip_dir, "video.mp4"))
    target = HandKeypoints.load(os.path.join(clip_dir, "hand_joints.npz"))
    if target.num_frames != len(video):
        raise DataError(os.path.join(clip_dir, "hand_joints.npz"), f"{target.num_frames} frames but video.mp4 has {len(video)}")
    start = time.perf_counter()
    pred = estimator.estimate(video)
    seconds = (time.perf_counter() - start) / len(video)
    return {**keypoint_metrics(pred, target, (5, 10, 20), "root"), "frames": len(video),
            "estimator_s_per_frame": round(seconds, 4)}


def main(argv: Sequence[str] | None = None) -> int:
    from data_tools.io.cli import setup_logging
    from data_tools.metrics.keypoints import EstimatorConfig, build_estimator

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", help="processed clip folder (video.mp4 + hand_joints.npz)")
    parser.add_argument("--video", help="a real video (with --keypoint-map)")
    parser.add_argument("--keypoint-map", help="its hand-keypoint map video (the ground truth)")
    parser.add_argument("--fit-affine", action="store_true", help="also fit a free per-axis scale and offset")
    parser.add_argument("--out", required=True, help="folder for calibration.json")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if bool(args.clip) == bool(args.video and args.keypoint_map):
        parser.error("give --clip, or --video and --keypoint-map")

    path = os.path.join(args.out, "calibration.json")
    if args.clip:
        result = {"clip": args.clip, **calibrate_clip(args.clip, build_estimator(EstimatorConfig()))}
    else:
        video, keypoint_map = read_video(args.video), read_video(args.keypoint_map)
        result = {"video": args.video, "keypoint_map": args.keypoint_map,
                  **calibrate(video, keypoint_map, build_estimator(EstimatorConfig()), fit_affine=args.fit_affine)}
    write_json(path, result)
    logger.info("estimator vs ground truth%s: hand found %.3f, MPJPE-2D %.2f px, PCK@0.05 box %.3f%s -> %s",
                f" ({result['mapping']})" if "mapping" in result else "",
                result.get("hand_found", result["detection_rate"]),
                result["mpjpe_2d_px"], result["pck_0.05box"],
                f", skeleton distance {result['skeleton_distance_px']:.2f} px" if "mapping" in result else "", path)
    return 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
