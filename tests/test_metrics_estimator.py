"""The MediaPipe hand estimator: output conversion (on a scripted stand-in of mediapipe's Hands), and the real
model on the DexYCB sample video (skipped, with the reason, when the eval extra or ../shared is absent)."""
from __future__ import annotations

import enum
import types

import numpy as np
import pytest

from data_tools.maps.keypoints import JOINT_NAMES
from data_tools.metrics import mediapipe_hands
from data_tools.metrics.keypoints import EstimatorConfig, MediaPipeConfig, build_estimator, keypoint_metrics
from data_tools.metrics.mediapipe_hands import MediaPipeHandEstimator, landmark_order

MP_NAMES = ["WRIST", "THUMB_CMC", "THUMB_MCP", "THUMB_IP", "THUMB_TIP", "INDEX_FINGER_MCP", "INDEX_FINGER_PIP",
            "INDEX_FINGER_DIP", "INDEX_FINGER_TIP", "MIDDLE_FINGER_MCP", "MIDDLE_FINGER_PIP", "MIDDLE_FINGER_DIP",
            "MIDDLE_FINGER_TIP", "RING_FINGER_MCP", "RING_FINGER_PIP", "RING_FINGER_DIP", "RING_FINGER_TIP",
            "PINKY_MCP", "PINKY_PIP", "PINKY_DIP", "PINKY_TIP"]


def test_estimator_landmark_order_maps_names_onto_our_joints():
    assert landmark_order(MP_NAMES).tolist() == list(range(21))   # MediaPipe's order is ours
    shuffled = [MP_NAMES[i] for i in [0, 5, 6, 7, 8, 1, 2, 3, 4] + list(range(9, 21))]   # index before thumb
    order = landmark_order(shuffled)
    assert [shuffled[i] for i in order][:6] == ["WRIST", "THUMB_CMC", "THUMB_MCP", "THUMB_IP", "THUMB_TIP",
                                                "INDEX_FINGER_MCP"]
    assert JOINT_NAMES[1] == "thumb_1" and JOINT_NAMES[20] == "little_4"
    with pytest.raises(ValueError):
        landmark_order(MP_NAMES[:-1] + ["TOE"])


def _fake_hands(frames: dict):
    """A stand-in for ``mediapipe.solutions.hands``: frame i (by call count) shows the hands in ``frames[i]``:
    a list of (label, score, xy (21, 2) in [0, 1], world (21, 3) m)."""
    point = lambda *v: types.SimpleNamespace(**dict(zip("xyz", v)))  # noqa: E731

    class Hands:
        def __init__(self, **kwargs):
            self.calls = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def process(self, frame):
            hands = frames.get(self.calls, [])
            self.calls += 1
            return types.SimpleNamespace(
                multi_hand_landmarks=[types.SimpleNamespace(landmark=[point(*p) for p in xy]) for _, _, xy, _ in hands] or None,
                multi_hand_world_landmarks=[types.SimpleNamespace(landmark=[point(*p) for p in w]) for *_, w in hands] or None,
                multi_handedness=[types.SimpleNamespace(classification=[types.SimpleNamespace(label=l, score=s)])
                                  for l, s, _, _ in hands])

    return types.SimpleNamespace(Hands=Hands, HandLandmark=enum.IntEnum("HandLandmark", MP_NAMES, start=0))


def test_estimator_converts_pixels_handedness_and_missing_frames(monkeypatch):
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.1, 0.9, (21, 2)), rng.uniform(0.1, 0.9, (21, 2))
    wa, wb = rng.normal(0, 0.05, (21, 3)), rng.normal(0, 0.05, (21, 3))
    # frame 0: MediaPipe "Left" (the person's right hand on an unmirrored frame) at 0.9 and "Right" at 0.6;
    # frame 1: no hand; frame 2: only "Right" (the person's left hand)
    frames = {0: [("Left", 0.9, a, wa), ("Right", 0.6, b, wb)], 2: [("Right", 0.8, b, wb)]}
    monkeypatch.setattr(mediapipe_hands, "import_hands", lambda: _fake_hands(frames))
    video = np.zeros((3, 40, 60, 3), np.uint8)
    best = MediaPipeHandEstimator(MediaPipeConfig()).estimate(video)
    np.testing.assert_allclose(best.joints_2d[0], a * [60, 40] - 0.5)
    np.testing.assert_allclose(best.joints_3d[0], wa * 1000)
    assert (best.joints_2d[1] == -1).all() and (best.joints_3d[1] == -1).all()
    np.testing.assert_allclose(best.joints_2d[2], b * [60, 40] - 0.5)
    estimator = MediaPipeHandEstimator(MediaPipeConfig(hand="left"))
    left = estimator.estimate(video)
    np.testing.assert_allclose(left.joints_2d[0], b * [60, 40] - 0.5)
    assert estimator.last_sides == ["left", None, "left"]
    right = estimator.estimate(video, side="right")            # per-call side wins over the config
    assert (right.joints_2d[2] == -1).all() and estimator.last_sides == ["right", None, None]
    mirrored = MediaPipeHandEstimator(MediaPipeConfig(hand="right", mirrored=True)).estimate(video)
    np.testing.assert_allclose(mirrored.joints_2d[0], b * [60, 40] - 0.5)
    # a missed frame counts against the detection rate and is left out of the errors
    metrics = keypoint_metrics(best, best)
    assert metrics["detection_rate"] == 1.0 and metrics["mpjpe_2d_px"] == 0.0
    truth = best.joints_2d.copy()
    truth[1] = 10.0
    from data_tools.maps.hand_joints import HandKeypoints
    assert keypoint_metrics(best, HandKeypoints(truth))["detection_rate"] == pytest.approx(2 / 3)


def test_estimator_kind_is_checked():
    from data_tools.errors import DataError
    with pytest.raises(DataError, match="kind must be one of"):
        build_estimator(EstimatorConfig(kind="openpose"))


@pytest.mark.needs_shared
def test_estimator_on_the_real_dexycb_sample(sample_dir):
    """MediaPipe Hands (the eval extra) finds the hand in the sample's real video, with a hand-sized 3D skeleton."""
    pytest.importorskip("mediapipe", reason="the eval extra is not installed (bash scripts/_setup.sh eval)")
    from data_tools.io.video_io import read_video, resample_indices

    video = read_video(f"{sample_dir}/val_video.mp4")
    frames = video[resample_indices(len(video), 12)]
    pred = build_estimator(EstimatorConfig()).estimate(frames)
    found = (pred.joints_2d != -1).all((1, 2))
    assert found.mean() >= 0.8                                   # measured: 70 of 72 frames
    inside = (pred.joints_2d[found] >= -5).all() and (pred.joints_2d[found] <= [645, 485]).all()
    assert inside
    chain = pred.joints_3d[found][:, [0, 9, 10, 11, 12]]          # wrist -> middle fingertip, along the bones
    length = np.linalg.norm(np.diff(chain, axis=1), axis=-1).sum(1)
    assert ((length > 130) & (length < 250)).all(), length        # an adult hand, mm, however curled


class _Oracle:
    """An estimator that 'finds' known joints: each video frame's pixel (0, 0) holds its frame number."""

    def __init__(self, joints_by_frame):
        self.joints_by_frame = joints_by_frame

    def estimate(self, video, side=None):
        from data_tools.maps.hand_joints import HandKeypoints
        return HandKeypoints(self.joints_by_frame[video[:, 0, 0, 0]])


def test_estimator_calibration_finds_the_mapping_of_a_paired_map():
    """A 9-frame 'video' whose map is its 5 resampled frames cropped to another size: calibrate() picks
    resample/crop, and an oracle estimator scores the decoder's rounding only."""
    from data_tools.io.video_io import resample_indices
    from data_tools.maps.hand_joints import map_points
    from data_tools.maps.keypoints import draw_hand_keypoints
    from data_tools.metrics.calibration import calibrate
    from data_tools.pose.camera import Camera, look_at
    from data_tools.pose.procedural_hand import procedural_hand

    hand = procedural_hand()
    world = hand(np.zeros((1, 3)), np.zeros((1, 45)), np.zeros((1, 10)), np.zeros((1, 3))).joints.double().numpy()[0]
    rot, t = look_at(world.mean(0) + [0.0, 0.0, 0.5], world.mean(0), up=(0.0, 1.0, 0.0))
    camera = Camera.from_fov(240, 360, 45.0, rotation=rot, translation=t)
    base = camera.project(world)
    joints = np.stack([base + [2.0 * k, -1.5 * k] for k in range(9)])            # the hand drifts over 9 frames
    in_map = map_points(joints[resample_indices(9, 5)], (240, 360), (240, 320), "crop")
    keypoint_map = np.stack([draw_hand_keypoints(j, 240, 320, camera.to_camera(world)) for j in in_map])
    video = np.zeros((9, 240, 360, 3), np.uint8)
    video[:, 0, 0, 0] = np.arange(9)
    result = calibrate(video, keypoint_map, _Oracle(joints), resize_modes=("crop", "resize"))
    assert result["mapping"] == "resample/crop" and result["frames_decoded"] == 5 and result["hand_found"] == 1.0
    assert result["mpjpe_2d_px"] <= 0.71 and result["pck_0.05box"] == 1.0 and result["skeleton_distance_px"] == 0.0
    assert result["by_mapping"]["resample/resize"]["mpjpe_2d_px"] > 2 and result["by_mapping"]["head/crop"]["mpjpe_2d_px"] > 2
