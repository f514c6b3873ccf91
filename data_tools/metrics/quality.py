"""Quality control of a generated video against its own ground truth, and the accept / reject rule.

Scores (each None when it cannot be measured): ``detection_rate`` (frames with a ground-truth hand where the
estimator, MediaPipe by default, finds all 21 joints), ``keypoint_error_px`` (2D MPJPE over those frames),
``iou_hand`` / ``iou_object`` (a region segmenter's hand and object masks on the generated frames against the
rendered seg mask, frames pooled; only with a ``segmenter``). ``verdict`` compares them with the thresholds;
a threshold left null does not gate. ``quality`` folds the scores into one number in [0, 1] to rank
first-frame candidates.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from data_tools.errors import DataError, require_file
from data_tools.maps.hand_joints import HandKeypoints
from data_tools.metrics.keypoints import EstimatorConfig, build_estimator, keypoint_metrics

SCORES = ("detection_rate", "keypoint_error_px", "iou_hand", "iou_object")
# score -> (threshold field, True when higher is better)
THRESHOLDS = {"detection_rate": ("min_detection_rate", True), "keypoint_error_px": ("max_keypoint_error_px", False),
              "iou_hand": ("min_hand_iou", True), "iou_object": ("min_object_iou", True)}
KEYPOINT_ERROR_SCALE_PX = 10.0   # quality: an error of this many pixels counts half


@dataclasses.dataclass
class QualityConfig:
    """What is measured and where a video is rejected (thresholds: null = not gating)."""

    keypoints: bool = True               # run the hand-keypoint estimator
    estimator: EstimatorConfig = dataclasses.field(default_factory=EstimatorConfig)
    segmenter: str | None = None         # PixelSegmenter weights (data_tools.metrics.regions) for the mask IoUs
    min_detection_rate: float | None = None
    max_keypoint_error_px: float | None = None
    min_hand_iou: float | None = None
    min_object_iou: float | None = None
    choose_first_frame: bool = True      # pick the first-frame candidate with the best quality (else sim2real's pick)

    RANGES = {"min_detection_rate": (0, 1), "max_keypoint_error_px": (0, None), "min_hand_iou": (0, 1),
              "min_object_iou": (0, 1)}

    def __post_init__(self):
        if not self.keypoints and (self.min_detection_rate is not None or self.max_keypoint_error_px is not None):
            raise DataError(None, "qc: keypoint thresholds are set but 'keypoints' is false")
        if self.segmenter is None and (self.min_hand_iou is not None or self.min_object_iou is not None):
            raise DataError(None, "qc: mask IoU thresholds are set but no 'segmenter' is given")

    def thresholds(self) -> dict:
        return {field: getattr(self, field) for field, _ in THRESHOLDS.values()}


def verdict(scores: dict, config: QualityConfig) -> tuple[bool, list[str]]:
    """(accepted, reasons): every set threshold must be met; an unmeasured score fails its threshold."""
    reasons = []
    for score, (field, higher) in THRESHOLDS.items():
        limit = getattr(config, field)
        if limit is None:
            continue
        value = scores.get(score)
        if value is None:
            reasons.append(f"{score} not measured")
        elif (value < limit) if higher else (value > limit):
            reasons.append(f"{score} {value:.3g} {'<' if higher else '>'} {limit:g}")
    return not reasons, reasons


def quality(scores: dict) -> float:
    """Mean of the measured scores mapped to [0, 1] (higher is better; the keypoint error through
    ``1 / (1 + error / 10 px)``); 0 when nothing was measured."""
    terms = [scores[k] for k in ("detection_rate", "iou_hand", "iou_object") if scores.get(k) is not None]
    if scores.get("keypoint_error_px") is not None:
        terms.append(1 / (1 + scores["keypoint_error_px"] / KEYPOINT_ERROR_SCALE_PX))
    return float(np.mean(terms)) if terms else 0.0


def _finite(value) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


class QualityScorer:
    """Holds the estimator and the segmenter (loaded once) and scores frames against their ground truth."""

    def __init__(self, config: QualityConfig, device: str | None = None):
        self.config = config
        self.estimator = build_estimator(config.estimator, device) if config.keypoints else None
        self.segmenter = None
        if config.segmenter:
            from data_tools.metrics.regions import load_segmenter

            self.segmenter = load_segmenter(require_file(config.segmenter, "QC segmenter weights"))

    def score(self, frames: np.ndarray, joints: HandKeypoints | None, seg_mask: np.ndarray | None) -> dict:
        """Scores of ``frames (T, H, W, 3)`` against ground-truth ``joints`` (T frames, pixels of the frames) and
        the rendered ``seg_mask (T, H, W, 3)``; a score whose inputs are missing is None."""
        scores: dict[str, float | None] = dict.fromkeys(SCORES)
        if self.estimator is not None and joints is not None:
            if joints.num_frames != len(frames):
                raise DataError(None, f"QC: {len(frames)} frames but ground truth for {joints.num_frames}")
            found = self.estimator.estimate(frames, side=joints.side)
            metrics = keypoint_metrics(HandKeypoints(found.joints_2d), HandKeypoints(joints.joints_2d))
            scores["detection_rate"] = _finite(metrics["detection_rate"])
            scores["keypoint_error_px"] = _finite(metrics["mpjpe_2d_px"])
        if self.segmenter is not None and seg_mask is not None:
            from data_tools.metrics.regions import region_iou, region_labels

            ious = region_iou(self.segmenter.predict(frames), region_labels(seg_mask))
            scores["iou_hand"], scores["iou_object"] = _finite(ious["iou_hand"]), _finite(ious["iou_object"])
        return scores
