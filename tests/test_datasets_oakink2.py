"""OakInk2 converter end to end on a generated fixture in the toolkit's layout (tiny frames, known hands and cameras)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from data_tools.datasets import oakink2, synthetic
from data_tools.datasets.index import read_index
from data_tools.io.filelists import read_filelist
from data_tools.pose.procedural_hand import procedural_hand
from data_tools.maps.segmentation import ADE20K_PALETTE, HAND_CLASS
from data_tools.io.video_io import read_video

H, W, FPS = 48, 64, 15
K = synthetic.oakink2_intrinsics(H, W)
TOKEN, BROKEN = synthetic.OAKINK2_TOKEN, "scene_02__A002++seq__broken"
rh_tsl = synthetic.oakink2_rh_tsl


def make_oakink2(root: str) -> str:
    """Two annotated sequences x two cameras x 7 frames (two clips of 3 each), one annotated without frames."""
    synthetic.write_oakink2_sequence(root, TOKEN, height=H, width=W)
    synthetic.write_oakink2_sequence(root, BROKEN, height=H, width=W, drop_mano_frame=104)  # clip 1 lacks frame 104
    open(os.path.join(root, "anno_preview", "scene_03__nodata.pkl"), "wb").close()
    synthetic.write_oakink2_assets(root, TOKEN)
    return root


def project(point, extr_t=(0.0, 0.0, 0.0)) -> tuple[int, int]:
    """Hand-computed pinhole projection (rotation identity) -> (row, col)."""
    x, y, z = np.asarray(point) + extr_t
    return int(round(K[1, 1] * y / z + K[1, 2])), int(round(K[0, 0] * x / z + K[0, 2]))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = make_oakink2(str(tmp_path_factory.mktemp("oakink2_raw")))
    out = str(tmp_path_factory.mktemp("oakink2_out"))
    summary = oakink2.convert_oakink2(root, out, video_len=3, num_train=2, fps=FPS, workers=1)
    return root, out, summary


def test_quaternion_to_axis_angle():
    assert np.allclose(oakink2.quat_to_axis_angle([1, 0, 0, 0]), 0)
    half = np.radians(60) / 2
    assert np.allclose(oakink2.quat_to_axis_angle([np.cos(half), 0, 0, np.sin(half)]), [0, 0, np.radians(60)])
    assert np.allclose(oakink2.quat_to_axis_angle([-np.cos(half), 0, -np.sin(half), 0]), [0, np.radians(60), 0])


def test_summary_and_splits(converted):
    _, out, summary = converted
    failed = {f["clip"]: f["reason"] for f in summary["failed"]}
    assert set(failed) == {f"{BROKEN}/cam_a/1", f"{BROKEN}/cam_b/1", "scene_03__nodata"}
    assert "raw_mano has no lh__pose_coeffs for frame 104" in failed[f"{BROKEN}/cam_a/1"]
    assert "no frames folder" in failed["scene_03__nodata"]
    assert summary["num_converted"] == 6
    index = read_index(out)
    done = sorted([f"{BROKEN}/{c}/0" for c in ("cam_a", "cam_b")] + [f"{TOKEN}/{c}/{k}" for c in ("cam_a", "cam_b") for k in (0, 1)])
    assert index["train"] == done[:2] and index["val"] == done[2:] and index["test"] == done[2:]
    assert read_filelist(os.path.join(out, "filelists", "val", "seg_mask.txt")) == [f"{c}/seg_mask.mp4" for c in done[2:]]
    # a second run converts nothing again
    again = oakink2.convert_oakink2(converted[0], out, video_len=3, num_train=2, fps=FPS)
    assert again["num_skipped"] == 6 and again["num_converted"] == 0 and again["num_failed"] == 3


def _close(pixel, colour, tol=16):
    return np.abs(pixel.astype(int) - np.asarray(colour, int)).max() <= tol


def test_clip_maps_follow_annotations(converted):
    _, out, _ = converted
    clip = os.path.join(out, TOKEN, "cam_a", "1")
    maps = {n: read_video(os.path.join(clip, f"{n}.mp4")) for n in ("video", "hand_keypoints", "depth", "seg_mask")}
    for name, frames in maps.items():
        assert frames.shape == (3, H, W, 3), name
    assert abs(int(maps["video"][0].mean()) - (60 + 10 * 3)) <= 2  # clip 1 starts at frame 103
    joints = procedural_hand("right")().joints[0].numpy()           # flat template hand, wrist at the origin
    palm = (joints[0] + joints[9]) / 2 - joints[0]                  # half way wrist -> middle-finger base
    seg, depth, kp = maps["seg_mask"], maps["depth"], maps["hand_keypoints"]
    for t, fid in enumerate((103, 104, 105)):
        r, c = project(rh_tsl(fid) + palm)
        assert _close(seg[t, r, c], ADE20K_PALETTE[HAND_CLASS]), (t, seg[t, r, c])
        assert kp[t, max(r - 4, 0):r + 5, c - 4:c + 5].max() > 100  # the skeleton passes through the palm
    r, c = project(synthetic.OBJECT_TSL)
    assert _close(seg[0, r, c], ADE20K_PALETTE[1])                   # first object of obj_list -> class 1
    assert seg[0, H - 2, 1].max() <= 6 and kp[0, H - 2, 1].max() <= 6 and depth[0, H - 2, 1].max() <= 6
    hand_r, hand_c = project(rh_tsl(103) + palm)
    assert depth[0, hand_r, hand_c, 0] > depth[0, r, c, 0] + 40 > 40  # hand (0.5 m) nearer than object (0.55 m)
    # the right hand moves right: its palm pixel column grows over the clip
    hand_cols = [np.nonzero(np.all(np.abs(seg[t].astype(int) - ADE20K_PALETTE[HAND_CLASS]) < 16, -1))[1] for t in (0, 2)]
    assert hand_cols[1].max() > hand_cols[0].max()


def test_descriptions_and_captions(converted):
    _, out, _ = converted
    first = json.load(open(os.path.join(out, TOKEN, "cam_b", "0", "descriptions.json")))
    second = json.load(open(os.path.join(out, TOKEN, "cam_b", "1", "descriptions.json")))
    assert first["frame_ids"] == [100, 101, 102] and second["frame_ids"] == [103, 104, 105]
    assert first["action"] == "Pick up the green box." and second["action"] == "Put down the green box."
    assert first["prompt"].startswith("Two hands pick up the green box")
    assert first["view"] == "egocentric" and first["hand_model"] == "procedural"
    broken = json.load(open(os.path.join(out, BROKEN, "cam_a", "0", "descriptions.json")))
    assert broken["action"] is None and "green box" in broken["prompt"]


def test_resample_and_external_depth(tmp_path, converted):
    root = converted[0]
    depth_dir = str(tmp_path / "depth")
    os.makedirs(os.path.join(depth_dir, TOKEN, "cam_a", "0"))
    ramp = np.broadcast_to(np.linspace(0.1, 1.0, W, dtype=np.float32), (3, H, W))
    np.savez(os.path.join(depth_dir, TOKEN, "cam_a", "0", "depth.npz"), depth=ramp)
    out = str(tmp_path / "out")
    summary = oakink2.convert_oakink2(root, out, video_len=3, num_frames=5, size=(32, 48), depth_dir=depth_dir)
    assert summary["num_converted"] == 1  # only the clip with external depth; the others report it missing
    assert "no external depth" in summary["failed"][0]["reason"]
    clip = os.path.join(out, TOKEN, "cam_a", "0")
    for name in ("video", "hand_keypoints", "depth", "seg_mask"):
        assert read_video(os.path.join(clip, f"{name}.mp4")).shape == (5, 32, 48, 3)
    assert json.load(open(os.path.join(clip, "descriptions.json")))["frame_ids"] == [100, 100, 101, 102, 102]


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exc:
        oakink2.main(["--help"])
    assert exc.value.code == 0 and "--mano-dir" in capsys.readouterr().out
