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


def skeleton_distances(joints_2d: np.ndarray, keypoint_map: np.ndarray) -> np.ndarray:
    """Distance (px) from each joint ``(T, 21, 2)`` to the nearest drawn pixel of its frame of ``keypoint_map``
    (NaN for missing joints or empty frames): a palette-free lower bound of the joint error."""
    out = np.full(joints_2d.shape[:2], np.nan)
    for t, frame in enumerate(keypoint_map):
        drawn = frame.max(-1) > SKELETON_LEVEL
        if not drawn.any():
            continue
        dist = cv2.distanceTransform((~drawn).astype(np.uint8), cv2.DIST_L2, 5)
        valid = valid_joints(joints_2d[t])
        xy = np.round(joints_2d[t]).astype(int)
        inside = valid & (xy[:, 0] >= 0) & (xy[:, 1] >= 0) & (xy[:, 0] < frame.shape[1]) & (xy[:, 1] < frame.shape[0])
        out[t, inside] = dist[xy[inside, 1], xy[inside, 0]]
        out[t, valid & ~inside] = np.inf
    return out


def calibrate(video: np.ndarray, keypoint_map: np.ndarray, estimator: KeypointEstimator,
              resize_modes: Sequence[str] = RESIZE_MODES) -> dict:
    """Estimator error on ``video`` against the joints decoded from ``keypoint_map`` (frames resampled in time to
    the map's count; the spatial mapping is the resize mode of ``resize_modes`` that fits best, reported)."""
    t, h, w = keypoint_map.shape[:3]
    idx = resample_indices(len(video), t)
    target = HandKeypoints(decode_hand_keypoints_video(keypoint_map))
    start = time.perf_counter()
    pred = estimator.estimate(video[idx])
    seconds = (time.perf_counter() - start) / t
    results = {}
    for mode in resize_modes:
        moved = HandKeypoints(map_points(pred.joints_2d, video.shape[1:3], (h, w), mode))
        results[mode] = keypoint_metrics(moved, target, (5, 10, 20))
        near = skeleton_distances(moved.joints_2d, keypoint_map)
        near = near[~np.isnan(near)]
        results[mode].update({"skeleton_distance_px": float(np.mean(np.minimum(near, 100.0))) if near.size else float("nan"),
                              "on_skeleton_3px": float((near <= 3).mean()) if near.size else float("nan")})
    best = min(results, key=lambda m: results[m]["skeleton_distance_px"])
    return {"resize_mode": best, **results[best], "by_resize_mode": results, "frames": t,
            "frames_with_ground_truth": int((target.joints_2d != -1).all((1, 2)).sum()),
            "video_shape": list(video.shape[:3]), "map_shape": [t, h, w], "estimator_s_per_frame": round(seconds, 4)}


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
    from data_tools.datasets.runner import run_command
    from data_tools.io.cli import setup_logging
    from data_tools.metrics.keypoints import EstimatorConfig, build_estimator

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", help="processed clip folder (video.mp4 + hand_joints.npz)")
    parser.add_argument("--video", help="a real video (with --keypoint-map)")
    parser.add_argument("--keypoint-map", help="its hand-keypoint map video (the ground truth)")
    parser.add_argument("--out", required=True, help="folder for calibration.json")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    if bool(args.clip) == bool(args.video and args.keypoint_map):
        parser.error("give --clip, or --video and --keypoint-map")

    def work():
        path = os.path.join(args.out, "calibration.json")
        if args.clip:
            result = {"clip": args.clip, **calibrate_clip(args.clip, build_estimator(EstimatorConfig()))}
        else:
            video, keypoint_map = read_video(args.video), read_video(args.keypoint_map)
            result = {"video": args.video, "keypoint_map": args.keypoint_map,
                      **calibrate(video, keypoint_map, build_estimator(EstimatorConfig()))}
        write_json(path, result)
        logger.info("estimator vs ground truth: hand found %.3f, MPJPE-2D %.2f px, PCK@0.05 box %.3f -> %s",
                    result["detection_rate"], result["mpjpe_2d_px"], result["pck_0.05box"], path)

    return run_command(work)


if __name__ == "__main__":
    raise SystemExit(main())
