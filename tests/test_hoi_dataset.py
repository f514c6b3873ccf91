import numpy as np
import pytest

from data_tools.errors import DataError
from data_tools.datasets.hoi_dataset import HOISplit, write_bundle_dataset, write_prompts, write_split
from data_tools.io.filelists import read_filelist, read_prompts_jsonl
from data_tools.io.video_io import write_video


def make_clip(root, clip, t=5, h=16, w=24, value=0):
    for column in ("video", "hand_keypoints", "depth", "seg_mask"):
        write_video(root / clip / f"{column}.mp4", np.full((t, h, w, 3), value, np.uint8))


def test_write_split_and_read_back(tmp_path):
    make_clip(tmp_path, "s1/seq/cam0", value=40)
    make_clip(tmp_path, "s1/seq/cam1", t=7, h=20, w=20, value=200)
    paths = write_split(tmp_path, "train", ["s1/seq/cam0", "s1/seq/cam1"], ["grasp  the mug\n", "lift a can"])
    assert read_filelist(paths["depth"]) == ["s1/seq/cam0/depth.mp4", "s1/seq/cam1/depth.mp4"]
    assert read_filelist(paths["prompt"]) == ["grasp the mug", "lift a can"]
    write_prompts(tmp_path, ["s1/seq/cam0"], ["grasp the mug"])
    assert read_prompts_jsonl(tmp_path / "prompts.jsonl")[0]["video"] == "s1/seq/cam0/video.mp4"
    split = HOISplit(tmp_path, "train", num_frames=5, size=(16, 24))
    assert len(split) == 2 and split.clip_name(1) == "s1/seq/cam1"
    bundle = split[1]
    assert bundle.shape == (5, 16, 24) and bundle.prompt == "lift a can" and bundle.name == "s1/seq/cam1"
    assert abs(int(bundle.first_frame.mean()) - 200) < 4
    assert HOISplit(tmp_path, "train", conditions=["depth"])[1].shape == (7, 20, 20)  # native size kept
    write_video(tmp_path / "s1/seq/cam1/depth.mp4", np.zeros((6, 20, 20, 3), np.uint8))  # a broken clip
    with pytest.raises(DataError, match=r"s1/seq/cam1: bundle 's1/seq/cam1': 'video' has \(T, H, W\) \(7, 20, 20\).*pass num_frames"):
        HOISplit(tmp_path, "train", conditions=["depth"])[1]


def test_split_errors(tmp_path):
    make_clip(tmp_path, "a")
    with pytest.raises(DataError, match="missing clip file"):
        write_split(tmp_path, "val", ["a", "b"], ["x", "y"])
    write_split(tmp_path, "val", ["a"], ["x"])
    with pytest.raises(DataError, match="filelist for column 'normal' is missing"):
        HOISplit(tmp_path, "val", conditions=["normal"])
    with pytest.raises(DataError, match="split 'test' has no filelists"):
        HOISplit(tmp_path, "test")


def test_bundle_becomes_a_one_clip_dataset(tmp_path):
    from data_tools.maps.bundle import ConditionBundle

    video = np.full((5, 16, 24, 3), 90, np.uint8)
    bundle = ConditionBundle({"depth": np.full((5, 16, 24, 3), 200, np.uint8)}, prompt="lift the can", video=video)
    write_bundle_dataset(tmp_path, bundle, "clip0", splits=("train", "val"))
    for split in ("train", "val"):
        item = HOISplit(tmp_path, split, conditions=["depth"])[0]
        assert item.shape == (5, 16, 24) and item.prompt == "lift the can"
        assert abs(int(item.conditions["depth"].mean()) - 200) < 4
    assert read_prompts_jsonl(tmp_path / "prompts.jsonl") == [{"video": "clip0/video.mp4", "prompt": "lift the can"}]
    with pytest.raises(DataError, match="needs a video"):
        write_bundle_dataset(tmp_path / "b", ConditionBundle({"depth": video}), "c")
