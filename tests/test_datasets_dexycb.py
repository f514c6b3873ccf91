"""DexYCB converter end to end on a generated fixture in the official layout (tiny frames, known labels)."""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from data_tools.datasets import dexycb, synthetic
from data_tools.datasets.index import read_index
from data_tools.io.filelists import read_filelist, read_prompts_jsonl
from data_tools.datasets.hoi_dataset import HOISplit
from data_tools.maps.keypoints import draw_hand_keypoints_video
from data_tools.maps.hand_joints import HandKeypoints
from data_tools.maps.segmentation import ADE20K_PALETTE, BACKGROUND_CLASS, HAND_CLASS
from data_tools.io.video_io import read_video

H, W, T = 64, 96, 3
SUBJECTS, SERIAL = synthetic.DEXYCB_SUBJECTS, synthetic.DEXYCB_SERIAL


def make_dexycb(root: str, sequences: int = 5) -> str:
    """Two subjects (official indices 0 and 2) x ``sequences`` x one camera, 3 frames of 64x96."""
    return synthetic.write_dexycb(root, sequences=sequences, num_frames=T, height=H, width=W)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = make_dexycb(str(tmp_path_factory.mktemp("dexycb_raw")))
    # malformed inputs: a missing label file, a broken meta.yml, a folder that is no sequence (sorted last)
    os.remove(os.path.join(root, SUBJECTS[1], "20200709_141101", SERIAL, "labels_000002.npz"))
    bad_meta = os.path.join(root, SUBJECTS[0], "20200709_141102", "meta.yml")
    with open(bad_meta, "w") as f:
        f.write("serials: [unclosed\n")
    os.makedirs(os.path.join(root, SUBJECTS[0], "zz_notes"))
    out = str(tmp_path_factory.mktemp("dexycb_out"))
    summary = dexycb.convert_dexycb(root, out, workers=2)
    return root, out, summary


def test_s0_split_definition():
    # every 5th sequence is held out: subjects 0-1 -> val, others -> test; the rest is train
    assert [dexycb.s0_split(0, q) for q in range(10)] == ["train"] * 4 + ["val"] + ["train"] * 4 + ["val"]
    assert dexycb.s0_split(1, 4) == "val" and dexycb.s0_split(2, 4) == "test" and dexycb.s0_split(9, 99) == "test"
    assert dexycb.s0_split(5, 3) == "train"
    # official subjects keep their official index even in a partial download; other names are sorted
    assert dexycb.subject_indices(["20200820-subject-03", "20200709-subject-01"]) == \
        {"20200820-subject-03": 2, "20200709-subject-01": 0}
    assert dexycb.subject_indices(["b", "a"]) == {"a": 0, "b": 1}


def test_summary_reports_malformed_sequences(converted):
    root, out, summary = converted
    failed = {f["clip"]: f["reason"] for f in summary["failed"]}
    assert set(failed) == {f"{SUBJECTS[1]}/20200709_141101/{SERIAL}", f"{SUBJECTS[0]}/20200709_141102",
                           f"{SUBJECTS[0]}/zz_notes"}
    assert "labels_000002.npz" in failed[f"{SUBJECTS[1]}/20200709_141101/{SERIAL}"]
    assert "meta.yml" in failed[f"{SUBJECTS[0]}/20200709_141102"] and "invalid YAML" in failed[f"{SUBJECTS[0]}/20200709_141102"]
    assert "not a DexYCB sequence" in failed[f"{SUBJECTS[0]}/zz_notes"]
    assert summary["num_converted"] == 8 and summary["num_skipped"] == 0
    on_disk = json.load(open(os.path.join(out, "conversion_summary.json")))
    assert on_disk["num_failed"] == 3 and on_disk["converted"] == summary["converted"]
    # a failed clip leaves nothing behind, and no staging or temporary files remain
    assert not os.path.exists(os.path.join(out, SUBJECTS[1], "20200709_141101"))
    assert not os.path.exists(os.path.join(out, ".staging"))
    assert not [f for _, _, files in os.walk(out) for f in files if ".part" in f]


def test_split_membership_and_filelists(converted):
    _, out, summary = converted
    index = read_index(out)
    seq = lambda subject, q: f"{subject}/20200709_1411{q:02d}/{SERIAL}"  # noqa: E731
    assert index["val"] == [seq(SUBJECTS[0], 4)]
    assert index["test"] == [seq(SUBJECTS[1], 4)]
    assert index["train"] == sorted([seq(SUBJECTS[0], q) for q in (0, 1, 3)] + [seq(SUBJECTS[1], q) for q in (0, 2, 3)])
    assert summary["splits"] == {"train": 6, "val": 1, "test": 1}
    for split in ("train", "val", "test"):
        folder = os.path.join(out, "filelists", split)
        assert sorted(os.listdir(folder)) == ["depth.txt", "hand_keypoints.txt", "prompt.txt", "seg_mask.txt", "video.txt"]
        for column in ("video", "hand_keypoints", "depth", "seg_mask"):
            assert read_filelist(os.path.join(folder, f"{column}.txt")) == [f"{c}/{column}.mp4" for c in index[split]]
    prompts = read_filelist(os.path.join(out, "filelists", "val", "prompt.txt"))
    assert prompts == ["A right hand grasps the mustard bottle and lifts it on a tabletop, next to a mug. "
                       "A realistic video of a hand-object interaction."]
    records = read_prompts_jsonl(os.path.join(out, "prompts.jsonl"))
    assert [r["video"] for r in records] == [f"{c}/video.mp4" for s in ("train", "val", "test") for c in index[s]]
    assert len(HOISplit(out, "train")) == 6  # the trainers' reader accepts the layout
    bundle = HOISplit(out, "val")[0]
    assert bundle.shape == (T, H, W) and bundle.video.shape == (T, H, W, 3) and bundle.prompt == prompts[0]


def _close(pixel, colour, tol=14):
    return np.abs(pixel.astype(int) - np.asarray(colour, int)).max() <= tol


def test_clip_contents(converted):
    _, out, _ = converted
    clip = os.path.join(out, SUBJECTS[0], "20200709_141104", SERIAL)
    videos = {n: read_video(os.path.join(clip, f"{n}.mp4")) for n in ("video", "hand_keypoints", "depth", "seg_mask")}
    for name, frames in videos.items():
        assert frames.shape == (T, H, W, 3), name
    seg, depth, kp = videos["seg_mask"], videos["depth"], videos["hand_keypoints"]
    # seg colours: hand -> ADE20K class 149, object id 5 kept, background -> class 150 (black)
    assert _close(seg[0, 15, 20], ADE20K_PALETTE[HAND_CLASS]) and _close(seg[2, 45, 70], ADE20K_PALETTE[synthetic.OBJECT_LABEL])
    assert _close(seg[1, 60, 4], ADE20K_PALETTE[BACKGROUND_CLASS], 4)
    # depth: nearest foreground (hand, 500 mm) bright, farthest (object, 800 mm) dark but not black, background black
    assert depth[0, 15, 20, 0] >= 245 and 1 <= depth[0, 45, 70, 0] <= 12 and depth[0, 60, 4].max() <= 4
    # keypoints: the drawing of the annotated joints; frame 1 has missing joints (-1) -> black
    draw = lambda shift: draw_hand_keypoints_video(  # noqa: E731
        np.stack([synthetic.dexycb_joints(t + shift, H, W) for t in range(T)]), H, W).astype(int)
    error = np.abs(kp - draw(0)).mean(axis=(1, 2, 3))        # h264 noise only
    error_shifted = np.abs(kp - draw(1)).mean(axis=(1, 2, 3))  # joints of the wrong frame (3 px off)
    assert error[0] < 0.6 * error_shifted[0] and error[2] < 0.6 * error_shifted[2]
    assert kp[1].max() <= 4 and kp[0].max() > 200
    # ground-truth joints for the keypoint metrics: 2D as annotated (native size), 3D metres -> mm, missing -> -1
    joints = HandKeypoints.load(os.path.join(clip, "hand_joints.npz"))
    assert np.allclose(joints.joints_2d[0], synthetic.dexycb_joints(0, H, W), atol=1e-4)
    assert (joints.joints_2d[1] == -1).all()
    assert np.allclose(joints.joints_3d[2, :, 2], np.linspace(500, 600, 21), atol=1e-2)
    desc = json.load(open(os.path.join(clip, "descriptions.json")))
    assert desc["objects"] == ["006_mustard_bottle", "025_mug"] and desc["split"] == "val"
    assert desc["num_frames"] == T and desc["size"] == [H, W] and desc["depth_source"] == "sensor"


def test_resume_skips_finished_and_redoes_partial(converted):
    root, out, _ = converted
    clip = os.path.join(out, SUBJECTS[0], "20200709_141100", SERIAL)
    os.remove(os.path.join(clip, "depth.mp4"))  # an incomplete clip is converted again
    before = os.path.getmtime(os.path.join(out, SUBJECTS[0], "20200709_141101", SERIAL, "video.mp4"))
    summary = dexycb.convert_dexycb(root, out, workers=1)
    assert summary["converted"] == [f"{SUBJECTS[0]}/20200709_141100/{SERIAL}"]
    assert summary["num_skipped"] == 7 and summary["num_failed"] == 3
    assert os.path.isfile(os.path.join(clip, "depth.mp4"))
    assert os.path.getmtime(os.path.join(out, SUBJECTS[0], "20200709_141101", SERIAL, "video.mp4")) == before


def test_resample_and_external_depth(tmp_path):
    root = str(tmp_path / "raw")
    seq_dir = os.path.join(root, "subject-a", "seq-00")
    os.makedirs(seq_dir)
    synthetic.write_dexycb_view(os.path.join(seq_dir, "cam0"), num_frames=4)  # no meta.yml: discovered
    depth_dir = str(tmp_path / "depthcrafter")
    disparity = np.full((4, 32, 48), 0.2, np.float32)  # DepthCrafter-like output at another resolution: far
    disparity[:, 3:13, 4:18] = 0.9  # hand box at half size: near (the object box stays at 0.2)
    os.makedirs(os.path.join(depth_dir, "subject-a", "seq-00"))
    np.savez(os.path.join(depth_dir, "subject-a", "seq-00", "cam0.npz"), depth=disparity)
    out = str(tmp_path / "out")
    assert dexycb.main(["--root", root, "--out", out, "--num-frames", "5", "--size", "48x80", "--depth-dir", depth_dir,
                        "--depth-colormap", "inferno", "--workers", "1"]) == 0
    summary = json.load(open(os.path.join(out, "conversion_summary.json")))
    assert summary["converted"] == ["subject-a/seq-00/cam0"] and summary["num_failed"] == 0
    assert read_filelist(os.path.join(out, "filelists", "train", "video.txt")) == ["subject-a/seq-00/cam0/video.mp4"]
    clip = os.path.join(out, "subject-a", "seq-00", "cam0")
    depth = read_video(os.path.join(clip, "depth.mp4"))
    for name in ("video", "hand_keypoints", "seg_mask"):
        assert read_video(os.path.join(clip, f"{name}.mp4")).shape == (5, 48, 80, 3)
    assert depth.shape == (5, 48, 80, 3)
    # 64x96 -> cover 48x80 (scale 0.833, 53x80, crop 2 rows): the hand box centre is nearest (grey 255), the object
    # centre farthest (grey 1), the background black; inferno colours them (pale yellow, near black, black)
    inferno = cv2.cvtColor(cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_INFERNO),
                           cv2.COLOR_BGR2RGB)[:, 0]
    assert _close(depth[0, 12, 18], inferno[255], 16) and tuple(inferno[255]) != (255, 255, 255)
    assert _close(depth[0, 36, 58], inferno[1], 16) and depth[0, 47, 2].max() <= 6
    assert json.load(open(os.path.join(clip, "descriptions.json")))["depth_source"] == "external"
    # joints follow the frames: time indices [0, 1, 2, 2, 3]; pixel centres scaled by 53/64 and 80/96, 2 rows cropped
    joints = HandKeypoints.load(os.path.join(clip, "hand_joints.npz")).joints_2d
    def expected(t):
        source = synthetic.dexycb_joints(t, 64, 96)
        return np.stack([(source[:, 0] + 0.5) * 80 / 96 - 0.5, (source[:, 1] + 0.5) * 53 / 64 - 0.5 - 2], axis=1)
    assert joints.shape == (5, 21, 2)
    assert all(np.allclose(joints[i], expected(t)) for i, t in enumerate([0, 1, 2, 2, 3]))


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exc:
        dexycb.main(["--help"])
    assert exc.value.code == 0 and "--depth-dir" in capsys.readouterr().out
