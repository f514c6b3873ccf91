"""Ground truth with every generated video, and the exported processed dataset (tiny models, CPU, seconds)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from data_tools.datasets.hoi_dataset import HOISplit
from data_tools.io.video_io import read_video, video_info
from data_tools.maps.hand_joints import HandKeypoints, valid_joints
from data_tools.maps.keypoints import decode_hand_keypoints, draw_hand_keypoints
from data_tools.pose.camera import Camera, look_at
from data_tools.pose.labels import SequenceLabels
from data_tools.pose.objects import builtin_object
from data_tools.pose.procedural_hand import procedural_hand
from data_tools.pose.render import RenderConfig, render_trajectory, write_outputs
from data_tools.pose.trajectory import generate_grasp_trajectory, save_trajectory
from data_tools.maps.hand_joints import map_points
from sim2real.run import main

pytest.importorskip("appearance_gen.generator")
pytest.importorskip("motion_gen.generator")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A trajectory and a rendered sim folder (with its labels) through sim2real with --export-dataset."""
    root = tmp_path_factory.mktemp("export")
    hand = procedural_hand()
    traj = generate_grasp_trajectory(hand, builtin_object("gelatin_box"), "gelatin_box", num_frames=9,
                                     height=64, width=96, seed=1, name="grasp_a")
    save_trajectory(traj, root / "in" / "grasp_a.npz")
    sim = traj.subset(np.arange(9))
    sim.name = "sim_b"
    camera = traj.camera.scaled(64, 96)
    write_outputs(render_trajectory(sim, RenderConfig(height=64, width=96), hand, progress=False),
                  str(root / "in" / "sim_b"), fps=15, mp4=False)
    SequenceLabels.from_trajectory(sim, hand, camera).save(root / "in" / "sim_b")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:   # 5 frames at 48x48: time resampling and a crop (64x96 -> 48x72 -> 48x48) for the sim folder
        assert main([str(root / "in"), "--out", str(root / "out"), "--export-dataset", str(root / "dataset"),
                     "--set", "seeds=[0]", "num_frames=5", "height=48", "width=48"]) == 0
    finally:
        torch.set_num_threads(previous)
    return root, traj, camera


def test_export_labels_match_video_and_project_to_2d(exported):
    root, traj, _ = exported
    for name in ("grasp_a", "sim_b"):
        clip = root / "dataset" / name
        info = video_info(str(clip / "video.mp4"))
        labels = SequenceLabels.load(clip)
        joints = HandKeypoints.load(clip / "hand_joints.npz")
        assert joints.num_frames == labels.num_frames == info["num_frames"] == 5 and joints.side == "right"
        assert (labels.camera.height, labels.camera.width) == (info["height"], info["width"]) == (48, 48)
        np.testing.assert_array_equal(labels.source_frames, [0, 2, 4, 6, 8])   # resample_indices(9, 5)
        # the exported 3D joints (mm, camera frame) projected with the exported K land on the exported 2D joints
        cam = joints.joints_3d / 1000.0
        uv = cam[..., :2] / cam[..., 2:] * [labels.camera.fx, labels.camera.fy] + [labels.camera.cx, labels.camera.cy]
        np.testing.assert_allclose(uv, joints.joints_2d, atol=1e-6)
        # the world joints seen through the exported extrinsics are the camera-frame joints
        out = procedural_hand()(traj.hand_global_orient, traj.hand_pose, traj.hand_betas[None], traj.hand_transl)
        world = out.joints.double().numpy()[labels.source_frames]
        np.testing.assert_allclose(world @ labels.camera.rotation.T + labels.camera.translation, cam, atol=1e-6)
        assert (clip / "seg_mask.mp4").is_file()


def test_export_joints_land_on_the_keypoint_map(exported):
    """The exported 2D joints sit on the drawn skeleton of the exported keypoint map (rendered at the video's size for
    the trajectory; for the sim folder the map was resized with it, like the joints)."""
    root, _, camera = exported
    for name, reach in (("grasp_a", 0), ("sim_b", 1)):
        clip = root / "dataset" / name
        joints = HandKeypoints.load(clip / "hand_joints.npz").joints_2d
        drawn = read_video(str(clip / "hand_keypoints.mp4")).max(-1) > 60
        inside = valid_joints(joints) & (joints >= 0).all(-1) & (joints <= [47, 47]).all(-1)
        assert inside.sum() > 20
        for t, j in zip(*np.nonzero(inside)):
            x, y = np.round(joints[t, j]).astype(int)
            assert drawn[t, max(y - reach, 0):y + reach + 1, max(x - reach, 0):x + reach + 1].any(), (name, t, j)
    # the sim folder's labels moved exactly like its frames: the crop of map_points
    sim = SequenceLabels.load(root / "in" / "sim_b")
    exported_2d = HandKeypoints.load(root / "dataset" / "sim_b" / "hand_joints.npz").joints_2d
    np.testing.assert_allclose(map_points(sim.keypoints.joints_2d[[0, 2, 4, 6, 8]], (64, 96), (48, 48), "crop"),
                               exported_2d, atol=1e-6)


def test_export_dataset_is_read_by_hoisplit_and_lists_everything(exported):
    root, _, _ = exported
    split = HOISplit(root / "dataset", "train", conditions=("hand_keypoints", "depth", "seg_mask"))
    assert len(split) == 2 and sorted(split.clip_name(i) for i in range(2)) == ["grasp_a", "sim_b"]
    item = split[0]
    assert item.video.shape == (5, 48, 48, 3) and item.conditions["seg_mask"].shape == (5, 48, 48, 3)
    assert item.prompt
    prompts = [json.loads(line) for line in (root / "dataset" / "prompts.jsonl").read_text().splitlines()]
    assert sorted(p["video"] for p in prompts) == ["grasp_a/video.mp4", "sim_b/video.mp4"]
    manifest = json.loads((root / "out" / "grasp_a" / "manifest.json").read_text())
    assert set(manifest["outputs"]["labels"]) == {"hand_joints", "pose_labels", "seg_mask"}


def test_keypoint_map_decoder_recovers_known_joints():
    """A flat hand seen from above (no finger hides another, all bones under 150 px so all are drawn), drawn by
    draw_hand_keypoints: the decoder gives back the rounded joints, exactly. (Fingers overlapping in the image
    can defeat it: see decode_hand_keypoints.)"""
    hand = procedural_hand()
    out = hand(np.zeros((1, 3)), np.zeros((1, 45)), np.zeros((1, 10)), np.zeros((1, 3)))
    world = out.joints.double().numpy()[0]
    centre = world.mean(0)
    for size, up in (((240, 320), (1.0, 0.0, 0.0)), ((240, 320), (0.0, 1.0, 0.0)), ((480, 640), (0.0, 1.0, 0.0))):
        rot, t = look_at(centre + [0.0, 0.0, 0.5], centre, up=up)
        camera = Camera.from_fov(*size, 45.0, rotation=rot, translation=t)
        joints = camera.project(world)
        image = draw_hand_keypoints(joints, *size, camera.to_camera(world))
        np.testing.assert_array_equal(decode_hand_keypoints(image), np.round(joints))
    assert (decode_hand_keypoints(np.zeros((32, 32, 3), np.uint8)) == -1).all()


def test_export_pose_fidelity_evaluation_reads_the_exported_labels(exported):
    """scripts/evaluate_sim2real.sh --exported: the estimator on each generated video vs its exported joints."""
    pytest.importorskip("mediapipe", reason="the eval extra is not installed (bash scripts/_setup.sh eval)")
    from data_tools.metrics.evaluation import main as evaluate

    root, _, _ = exported
    dataset = root / "dataset"
    assert evaluate(["--generated", str(dataset / "filelists" / "train" / "video.txt"), "--root", str(dataset),
                     "--config", str(Path(__file__).resolve().parents[1] / "configs" / "eval" / "pose_fidelity.yaml"), "--output", str(dataset / "eval")]) == 0
    result = json.loads((dataset / "eval" / "results.json").read_text())
    samples = result["runs"][0]["samples"]
    assert sorted(s["name"] for s in samples) == ["grasp_a", "sim_b"]
    assert all(s["keypoint_reference"] == "file" and 0.0 <= s["detection_rate"] <= 1.0 for s in samples)
    table = (dataset / "eval" / "results.md").read_text()
    assert "Hand found" in table and "## Pose fidelity per sequence" in table and "| sim_b |" in table
