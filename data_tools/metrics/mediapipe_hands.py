"""MediaPipe Hands as the project's default hand-keypoint estimator (offline: the models ship in the wheel).

Optional dependency (the ``eval`` extra): ``mediapipe==0.10.14`` installed with ``--no-deps`` plus the packages its
``solutions.hands`` really imports (protobuf<5, attrs, matplotlib), so no second OpenCV build lands next to
opencv-python-headless (see README, "Evaluation extra"). ``scripts/_setup.sh eval`` does both.

Outputs are converted to the project's conventions: joints in our 21-joint order (derived from MediaPipe's
``HandLandmark`` names), 2D in pixels of the input video (MediaPipe gives [0, 1] of the image, pixel edges at 0
and 1), 3D from the metric "world landmarks" in mm (origin near the hand's centre, camera-aligned axes: compare
them root-relative or Procrustes-aligned), frames without a detection as missing (-1).

Handedness: MediaPipe labels hands as if the image were mirrored (a selfie view); on ordinary camera frames its
"Left" is the person's right hand. ``mirrored=False`` (default) swaps the labels accordingly.
"""
from __future__ import annotations

import logging

import numpy as np

from data_tools.errors import DataError
from data_tools.maps.hand_joints import HandKeypoints
from data_tools.maps.keypoints import JOINT_NAMES, NUM_JOINTS
from data_tools.metrics.keypoints import KeypointEstimator, MediaPipeConfig

logger = logging.getLogger(__name__)

MEDIAPIPE_VERSION = "0.10.14"
FINGERS = {"THUMB": "thumb", "INDEX_FINGER": "index", "MIDDLE_FINGER": "middle", "RING_FINGER": "ring",
           "PINKY": "little"}
INSTALL_HINT = (f"the estimator needs mediapipe=={MEDIAPIPE_VERSION}: bash scripts/_setup.sh eval, or pip install "
                f"-e .[eval] && pip install --no-deps mediapipe=={MEDIAPIPE_VERSION} (README: Evaluation extra)")


def import_hands():
    """``mediapipe.solutions.hands``, or DataError saying how to install it."""
    try:
        from mediapipe.python.solutions import hands
    except ImportError as exc:
        raise DataError(None, f"{INSTALL_HINT} ({exc})") from None
    return hands


def landmark_order(landmark_names: list[str]) -> np.ndarray:
    """Index into MediaPipe's landmarks for each of our joints, from the landmark names (``WRIST``,
    ``THUMB_CMC`` ... ``PINKY_TIP``, in the ``HandLandmark`` enum's order): the k-th landmark of a finger,
    counted from the palm, is our ``{finger}_{k}``."""
    ours = {}
    per_finger: dict[str, int] = {}
    for index, name in enumerate(landmark_names):
        if name == "WRIST":
            ours["wrist"] = index
            continue
        finger = next((f for f in FINGERS if name.startswith(f + "_")), None)
        if finger is None:
            raise ValueError(f"unknown MediaPipe hand landmark {name!r}")
        per_finger[finger] = per_finger.get(finger, 0) + 1
        ours[f"{FINGERS[finger]}_{per_finger[finger]}"] = index
    if sorted(ours) != sorted(JOINT_NAMES):
        raise ValueError(f"MediaPipe landmarks {landmark_names} do not map onto our joints {JOINT_NAMES}")
    return np.array([ours[name] for name in JOINT_NAMES])


class MediaPipeHandEstimator(KeypointEstimator):
    """MediaPipe Hands behind the ``KeypointEstimator`` interface (CPU, about 20-40 ms per 480x640 frame)."""

    def __init__(self, config: MediaPipeConfig | None = None):
        self.config = config or MediaPipeConfig()
        if self.config.hand not in ("best", "right", "left"):
            raise DataError(None, f"estimator hand must be best, right or left, got {self.config.hand!r}")
        self.hands = import_hands()
        self.order = landmark_order([lm.name for lm in self.hands.HandLandmark])
        self.last_sides: list[str | None] = []   # the kept hand's side per frame of the last estimate()

    def _side(self, label: str) -> str:
        side = label.lower()
        return side if self.config.mirrored else {"left": "right", "right": "left"}[side]

    def estimate(self, video: np.ndarray, side: str | None = None) -> HandKeypoints:
        """``(T, H, W, 3)`` uint8 RGB -> keypoints (2D px, 3D mm root near the hand centre); missing -> -1.

        ``side`` ("right"/"left") overrides the configured ``hand`` for this call (e.g. the ground truth's side).
        """
        c = self.config
        want = side or c.hand
        video = np.ascontiguousarray(video)
        t, h, w = video.shape[:3]
        joints_2d = np.full((t, NUM_JOINTS, 2), -1.0)
        joints_3d = np.full((t, NUM_JOINTS, 3), -1.0)
        self.last_sides = [None] * t
        with self.hands.Hands(static_image_mode=c.static_image_mode, max_num_hands=c.max_num_hands,
                              model_complexity=c.model_complexity, min_detection_confidence=c.min_detection_confidence,
                              min_tracking_confidence=c.min_tracking_confidence) as hands:
            for i, frame in enumerate(video):
                result = hands.process(frame)
                if not result.multi_hand_landmarks:
                    continue
                found = [(self._side(hd.classification[0].label), hd.classification[0].score, k)
                         for k, hd in enumerate(result.multi_handedness)]
                if want != "best":
                    found = [f for f in found if f[0] == want]
                if not found:
                    continue
                kept_side, _, k = max(found, key=lambda f: f[1])
                image = np.array([(p.x, p.y) for p in result.multi_hand_landmarks[k].landmark])[self.order]
                joints_2d[i] = image * (w, h) - 0.5   # [0, 1] of the image edges -> pixel centres at integers
                world = np.array([(p.x, p.y, p.z) for p in result.multi_hand_world_landmarks[k].landmark])
                joints_3d[i] = world[self.order] * 1000.0
                self.last_sides[i] = kept_side
        return HandKeypoints(joints_2d, joints_3d)
