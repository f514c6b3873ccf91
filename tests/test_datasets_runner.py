"""The clip runner: atomic clip commits, failures as reasons, resume, stale staging, index writing."""
from __future__ import annotations

import json
import os

import pytest

from data_tools.datasets import runner
from data_tools.errors import DataError

OUTPUTS = ("a.txt", "descriptions.json")


def convert(job: runner.ClipJob, staging: str) -> None:
    with open(os.path.join(staging, "a.txt"), "w") as f:
        f.write(job.source)
    if job.params.get("fail") == "data":
        raise DataError(job.source, "label file lacks 'seg'")
    if job.params.get("fail") == "bug":
        raise ZeroDivisionError("division by zero")
    with open(os.path.join(staging, "descriptions.json"), "w") as f:
        json.dump({"prompt": f"clip {job.key}"}, f)


def test_run_clips_commits_whole_clips_only(tmp_path):
    root = str(tmp_path)
    os.makedirs(os.path.join(root, runner.STAGING_DIR, "stale.partial"))  # an interrupted earlier run
    jobs = [runner.ClipJob("s/ok", "src-ok"), runner.ClipJob("s/bad", "src-bad", {"fail": "data"}),
            runner.ClipJob("s/bug", "src-bug", {"fail": "bug"})]
    summary = runner.run_clips(jobs, convert, root, OUTPUTS, failed={"s/gone": "no frames"},
                               summary_path=os.path.join(root, "summary.json"))
    assert summary.converted == ["s/ok"] and summary.skipped == []
    assert summary.failed == {"s/bad": "src-bad: label file lacks 'seg'", "s/bug": "ZeroDivisionError: division by zero",
                              "s/gone": "no frames"}
    assert sorted(os.listdir(os.path.join(root, "s"))) == ["ok"]           # failed clips leave nothing
    assert sorted(os.listdir(os.path.join(root, "s", "ok"))) == ["a.txt", "descriptions.json"]
    assert not os.path.exists(os.path.join(root, runner.STAGING_DIR))      # stale and own staging removed
    assert json.load(open(os.path.join(root, "summary.json")))["num_failed"] == 3
    again = runner.run_clips(jobs[:1], convert, root, OUTPUTS)
    assert again.skipped == ["s/ok"] and again.converted == []
    assert runner.run_clips(jobs[:1], convert, root, OUTPUTS, overwrite=True).converted == ["s/ok"]


CLIP_FILES = ("video.mp4", "hand_keypoints.mp4", "depth.mp4", "seg_mask.mp4", "descriptions.json")


def fake_clip(job: runner.ClipJob, staging: str) -> None:
    for name in CLIP_FILES[:-1]:
        open(os.path.join(staging, name), "wb").close()
    with open(os.path.join(staging, "descriptions.json"), "w") as f:
        json.dump({"prompt": f"clip {job.key}"}, f)


def test_convert_dataset_indexes_finished_clips(tmp_path):
    root = str(tmp_path)
    splits = {"a": ("train",), "b": ("val", "test"), "c": ("train",), "d": ("train",)}  # d: known, never converted
    runner.convert_dataset([runner.ClipJob("c", "c")], fake_clip, root, CLIP_FILES, splits)  # an earlier, filtered run
    result = runner.convert_dataset([runner.ClipJob(k, k) for k in ("b", "a")], fake_clip, root, CLIP_FILES, splits)
    assert result["splits"] == {"train": 2, "val": 1, "test": 1} and result["num_converted"] == 2
    assert open(os.path.join(root, "filelists", "train", "depth.txt")).read() == "a/depth.mp4\nc/depth.mp4\n"
    assert open(os.path.join(root, "filelists", "test", "prompt.txt")).read() == "clip b\n"
    records = [json.loads(line) for line in open(os.path.join(root, "prompts.jsonl"))]
    assert [(r["video"], r["prompt"]) for r in records] == [("a/video.mp4", "clip a"), ("c/video.mp4", "clip c"),
                                                            ("b/video.mp4", "clip b")]


def test_clip_options_and_size():
    assert runner.clip_options(fps=30)["fps"] == 30 and runner.clip_options()["depth_colormap"] == "gray"
    with pytest.raises(TypeError, match="unknown clip option"):
        runner.clip_options(colour="red")
    assert runner.parse_size("480x720") == (480, 720)
    with pytest.raises(DataError, match="HEIGHTxWIDTH"):
        runner.parse_size("480")
