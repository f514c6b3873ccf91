"""Inputs as the reference ships them (``val_hand.mp4``) and one-line errors with exit status 2 from every CLI."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from data_tools.errors import DataError
from data_tools.io.cli import run_cli
from data_tools.maps.bundle import ConditionBundle, condition_videos

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = "configs/motion/tiny.yaml"


def _reference_folder(sample_dir: str, folder: pathlib.Path) -> pathlib.Path:
    """The DexYCB sample laid out like the reference's OakInk2 sample: the keypoint video as ``val_hand.mp4``
    (without the ground-truth video, which only slows the test)."""
    folder.mkdir()
    for name in set(os.listdir(sample_dir)) - {"val_video.mp4"}:
        target = "val_hand.mp4" if name == "val_hand_keypoints.mp4" else name
        os.symlink(os.path.join(sample_dir, name), folder / target)
    return folder


def test_release_reference_keypoint_name_is_an_alias(sample_dir, tmp_path):
    folder = _reference_folder(sample_dir, tmp_path / "oakink2_like")
    paths = condition_videos(folder, ["hand_keypoints", "tracking"])
    assert os.path.basename(paths["hand_keypoints"]) == "val_hand.mp4"
    assert os.path.basename(paths["tracking"]) == "val_tracking.mp4"
    bundle = ConditionBundle.from_video_folder(folder, ["hand_keypoints"], num_frames=5, size=(32, 48))
    direct = ConditionBundle.from_video_folder(sample_dir, ["hand_keypoints"], num_frames=5, size=(32, 48))
    np.testing.assert_array_equal(bundle.conditions["hand_keypoints"], direct.conditions["hand_keypoints"])


def test_release_infer_runs_on_a_reference_sample_folder(sample_dir, tmp_path):
    from motion_gen.infer import main

    folder = _reference_folder(sample_dir, tmp_path / "oakink2_like")
    out = tmp_path / "out"
    assert run_cli(main, ["--config", TINY, "--conditions", str(folder), "--out", str(out), "--steps", "1"]) == 0
    assert (out / "video.mp4").is_file() and (out / "side_by_side.mp4").is_file()


def test_bad_folder_gives_one_line_and_exit_2(tmp_path, capsys):
    from motion_gen.infer import main

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "depth.mp4").write_bytes(b"")
    args = ["--config", TINY, "--conditions", str(tmp_path / "bad"), "--out", str(tmp_path / "out")]
    assert run_cli(main, args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path / 'bad'}: no video for condition 'hand_keypoints' (looked for hand_keypoints.mp4 "
                   "or *_hand_keypoints.mp4 or hand.mp4 or *_hand.mp4); condition 'seg_mask' (looked for seg_mask.mp4 "
                   "or *_seg_mask.mp4)"]
    assert not (tmp_path / "out").exists()
    assert run_cli(main, args + ["-v"]) == 2                           # -v: the traceback, then the same line
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.strip().splitlines()[-1].startswith("error: ")
    with pytest.raises(DataError):                                    # called as a function, main still raises
        main(args)


def test_python_m_prints_the_error_line_not_a_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "data_tools.pose.render", str(tmp_path / "absent.npz"),
                             "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'absent.npz'}: trajectory file does not exist"]


def test_every_entry_point_goes_through_run_cli():
    """Each ``python -m`` module of the stages and data_tools ends in ``raise SystemExit(run_cli(main))``."""
    modules = [p for package in ("appearance_gen", "motion_gen", "sim2real", "data_tools")
               for p in (ROOT / package).rglob("*.py") if 'if __name__ == "__main__":' in p.read_text()]
    assert len(modules) >= 20
    missing = [str(p.relative_to(ROOT)) for p in modules if "raise SystemExit(run_cli(main))" not in p.read_text()]
    assert missing == []
