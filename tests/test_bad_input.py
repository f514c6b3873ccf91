"""Bad input, table-driven: each case is refused with one ``error:`` line that names the file and the problem,
exit status 2, and nothing written to the output folder (``sim2real.run`` on the tiny config, the renderer,
``motion_gen.infer``)."""
from __future__ import annotations

import os
import shutil

import cv2
import numpy as np
import pytest

from data_tools.io.cli import run_cli
from conftest import small_grasp

from data_tools.pose.render import RenderConfig, render_trajectory, write_outputs
from data_tools.pose.trajectory import load_trajectory, save_trajectory

TINY = "configs/sim2real/tiny.yaml"


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A valid 9-frame trajectory and its rendered sim folder."""
    root = tmp_path_factory.mktemp("good")
    traj, hand = small_grasp()
    path = save_trajectory(traj, root / "grasp.npz")
    write_outputs(render_trajectory(traj, RenderConfig(height=32, width=48), hand, progress=False),
                  str(root / "sim"), fps=15, mp4=False)
    return root, path


def _traj_with(good, tmp, key, edit) -> str:
    """The good trajectory saved with ``edit(array)`` applied to ``key`` (validation bypassed)."""
    with np.load(good[1]) as z:
        arrays = {k: z[k] for k in z.files}
    arrays[key] = edit(arrays[key].copy())
    path = os.path.join(tmp, "bad.npz")
    np.savez(path, **arrays)
    return path


def _set(a, index, value):
    a[index] = value
    return a


def _bytes(tmp, data: bytes) -> str:
    path = os.path.join(tmp, "bad.npz")
    open(path, "wb").write(data)
    return path


def _pickled(tmp) -> str:
    path = os.path.join(tmp, "bad.npz")
    np.savez(path, hand_transl=np.array([{"a": 1}], dtype=object))
    return path


def _sim_with(good, tmp, name, image) -> str:
    """A copy of the good sim folder with frame ``name`` replaced by ``image`` (written as is by OpenCV)."""
    folder = os.path.join(tmp, "sim")
    shutil.copytree(good[0] / "sim", folder)
    cv2.imwrite(os.path.join(folder, name), image)
    return folder


def _sim_file(good, tmp, name, data: bytes) -> str:
    folder = os.path.join(tmp, "sim")
    shutil.copytree(good[0] / "sim", folder)
    open(os.path.join(folder, name), "wb").write(data)
    return folder


def _config(tmp, text: bytes) -> str:
    path = os.path.join(tmp, "config.yaml")
    open(path, "wb").write(text)
    return path


# case id -> (function (good, tmp) -> (input path, extra args), fragment of the one error line, file it names)
CASES = {
    "nan hand_transl": (lambda g, t: (_traj_with(g, t, "hand_transl", lambda a: _set(a, 3, np.nan)), []),
                        "'hand_transl' is not finite at frame 3", "bad.npz"),
    "inf object_transl": (lambda g, t: (_traj_with(g, t, "object_transl", lambda a: _set(a, 0, np.inf)), []),
                          "'object_transl' is not finite at frame 0", "bad.npz"),
    "nan hand_pose": (lambda g, t: (_traj_with(g, t, "hand_pose", lambda a: _set(a, (8, 5), np.nan)), []),
                      "'hand_pose' is not finite at frame 8", "bad.npz"),
    "absurd orientation": (lambda g, t: (_traj_with(g, t, "hand_global_orient", lambda a: _set(a, 2, 1e30)), []),
                           "'hand_global_orient' has a magnitude above 100 (implausible) at frame 2", "bad.npz"),
    "short hand_transl": (lambda g, t: (_traj_with(g, t, "hand_transl", lambda a: a[:5]), []),
                          "per-frame arrays differ in frame count", "bad.npz"),
    "empty npz": (lambda g, t: (_bytes(t, b""), []), "not a readable trajectory .npz", "bad.npz"),
    "truncated npz": (lambda g, t: (_bytes(t, open(g[1], "rb").read()[:300]), []),
                      "not a readable trajectory .npz", "bad.npz"),
    "pickled npz": (lambda g, t: (_pickled(t), []), "not a readable trajectory .npz", "bad.npz"),
    "missing npz": (lambda g, t: (os.path.join(t, "absent.npz"), []), "does not exist", "absent.npz"),
    "rgba map": (lambda g, t: (_sim_with(g, t, "rendered_depth_2.png", np.zeros((32, 48, 4), np.uint8)), []),
                 "got RGBA", "rendered_depth_2.png"),
    "grey+alpha map": (lambda g, t: (_sim_file(g, t, "rendered_seg_mask_0.png", _grey_alpha_png()), []),
                       "got grey+alpha", "rendered_seg_mask_0.png"),
    "16-bit map": (lambda g, t: (_sim_with(g, t, "rendered_depth_1.png", np.zeros((32, 48, 3), np.uint16)), []),
                   "8-bit images, got 16-bit RGB", "rendered_depth_1.png"),
    "maps differ in size": (lambda g, t: (_sim_with(g, t, "rendered_depth_4.png", np.zeros((16, 48, 3), np.uint8)),
                                          []), "is 16x48 but", "rendered_depth_4.png"),
    "not an image": (lambda g, t: (_sim_file(g, t, "rendered_depth_0.png", b"not a png"), []),
                     "cannot decode image", "rendered_depth_0.png"),
    "prompt not utf-8": (lambda g, t: (_sim_file(g, t, "prompt.txt", b"a hand \xff\xfe"), []),
                         "prompt is not UTF-8 text", "prompt.txt"),
    "too short for first": (lambda g, t: (g[1], ["--set", "time_sampling=first", "num_frames=9", "trajectory_fps=10"]),
                            "trajectory has 6 frames at 10 fps; time sampling 'first' needs at least 9", "grasp.npz"),
    "num_frames=0": (lambda g, t: (g[1], ["--set", "num_frames=0"]), "'num_frames' must be >= 1", TINY),
    "height=0": (lambda g, t: (g[1], ["--set", "height=0"]), "'height' must be >= 8", TINY),
    "seeds: abc": (lambda g, t: (g[1], ["--set", "seeds=abc"]), "'seeds' must be a list", TINY),
    "fps: fast": (lambda g, t: (g[1], ["--set", "fps=fast"]), "'fps' must be a number", TINY),
    "pick: 5": (lambda g, t: (g[1], ["--set", "pick=5"]), "'pick' is 5 but there are 2 seeds", TINY),
    "negative seed": (lambda g, t: (g[1], ["--set", "seeds=[0,-1]"]), "'seeds' must be >= 0", TINY),
    "unknown key": (lambda g, t: (g[1], ["--set", "frames=3"]), "unknown config key(s) ['frames']", TINY),
    "render.fps=0": (lambda g, t: (g[1], ["--set", "render.fps=0"]), "'render.fps' must be >= 0.001", TINY),
    "yaml does not parse": (lambda g, t: (g[1], ["--config", _config(t, b"seeds: [0, 1\n")]), "invalid YAML",
                            "config.yaml"),
    "yaml not utf-8": (lambda g, t: (g[1], ["--config", _config(t, b"prompt: \xff\xfe\n")]), "not UTF-8 text",
                       "config.yaml"),
    "shard 3/2": (lambda g, t: (g[1], ["--shard", "3/2"]), "--shard 3/2: need 0 <= i < n", None),
}


def _grey_alpha_png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((32, 48, 2), np.uint8), mode="LA").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def fresh_logging():
    """Each CLI call configures logging on the stderr that pytest captures for that test."""
    import logging

    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    yield
    root.handlers[:] = saved


@pytest.mark.parametrize("case", list(CASES))
def test_sim2real_run_refuses_bad_input(case, good, tmp_path, capsys, monkeypatch):
    from sim2real.run import main

    monkeypatch.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    make, fragment, names = CASES[case]
    work = tmp_path / "in"
    work.mkdir()
    source, extra = make(good, str(work))
    out = tmp_path / "out"
    out.mkdir()
    (out / "kept.txt").write_text("written earlier")
    assert run_cli(main, [source, "--out", str(out), "--config", TINY, *extra]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1] and fragment in errors[0], lines
    assert not any("Traceback" in line or "loaded " in line.lower() for line in lines), lines  # before models load
    if names:
        assert names in errors[0], lines
    assert sorted(os.listdir(out)) == ["kept.txt"]          # nothing partial, nothing lost


def test_renderer_refuses_a_nan_trajectory(good, tmp_path, capsys):
    from data_tools.pose.render import main

    bad = _traj_with(good, str(tmp_path), "hand_transl", lambda a: _set(a, 1, np.nan))
    assert run_cli(main, [bad, "--out", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: {bad}: 'hand_transl' is not finite at frame 1"]
    assert not (tmp_path / "out").exists()


def test_label_files_never_hold_non_finite_values(good, tmp_path):
    from data_tools.errors import DataError
    from data_tools.maps.hand_joints import HandKeypoints

    joints = np.zeros((3, 21, 2))
    joints[2, 4, 1] = np.nan
    with pytest.raises(DataError, match=r"non-finite values in 'joints_2d' \(first at index 2\)"):
        HandKeypoints(joints).save(tmp_path / "hand_joints.npz")
    assert os.listdir(tmp_path) == []
    assert load_trajectory(good[1]).num_frames == 9     # the good trajectory itself loads


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--steps", "-2"]])
def test_zero_steps_is_refused_not_read_as_the_default(argv, tmp_path, capsys):
    from motion_gen.infer import main

    with pytest.raises(SystemExit) as exc:
        main(["--config", "configs/motion/tiny.yaml", "--conditions", str(tmp_path), "--out",
              str(tmp_path / "o"), *argv])
    assert exc.value.code == 2
    assert "expected an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_output_path_that_is_a_file_is_refused_before_any_work(good, tmp_path, capsys):
    from data_tools.pose.render import main as render
    from sim2real.run import main as sim2real

    target = tmp_path / "a_file"
    target.write_text("keep me")
    assert run_cli(render, [str(good[1]), "--out", str(target)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        f"error: {target}: output folder cannot be created: the path is a file"
    assert run_cli(sim2real, [str(good[1]), "--out", str(target), "--config", TINY]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1] == f"error: {target}/grasp: sequence output folder cannot be created ({target} is a file)"
    assert not any("loaded " in line.lower() for line in lines)
    assert target.read_text() == "keep me"


class _FailingModel:
    """Writes part of a folder, then fails, as a save interrupted by a full disk would."""

    def save_pretrained(self, folder, safe_serialization=True):
        os.makedirs(folder)
        open(os.path.join(folder, "config.json"), "w").write("{}")
        raise OSError(28, "No space left on device")


def test_a_failed_conversion_leaves_no_partial_folder(tmp_path):
    from data_tools.errors import DataError
    from data_tools.runtime.checkpoints import save_model_folder

    with pytest.raises(OSError):
        save_model_folder(_FailingModel(), str(tmp_path / "out"))
    assert os.listdir(tmp_path) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="the path is a file"):
        save_model_folder(_FailingModel(), str(tmp_path / "file"))
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_broken_config_json_is_named(tmp_path, capsys):
    from motion_gen.convert_ckpt import main

    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "config.json").write_text('{"num_tracking_blocks": 2,')
    assert run_cli(main, ["--reference", str(tmp_path / "ref"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'ref' / 'config.json'}: reference transformer "
                                               "config is not valid JSON")
    assert sorted(os.listdir(tmp_path)) == ["ref"]


@pytest.mark.parametrize("content", [b"", b"garbage", "pickle"])
def test_unreadable_weights_never_advise_unsafe_loading(content, tmp_path):
    import pickle

    from data_tools.errors import DataError
    from data_tools.runtime.checkpoints import load_weights_file

    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(pickle.dumps(print) if content == "pickle" else content)
    with pytest.raises(DataError) as exc:
        load_weights_file(str(path))
    assert str(exc.value).startswith(f"{path}: not a torch.save file of tensors")
    assert "weights_only" not in str(exc.value) and "allow_pickle" not in str(exc.value)


def test_condition_videos_of_different_lengths_are_not_stretched_silently(tmp_path):
    """A 3-frame depth video beside 17-frame maps is refused under the spread sampling, named with each count;
    taking the first frames of each (the reference's way) is the explicit alignment."""
    from data_tools.errors import DataError
    from data_tools.io.video_io import write_video
    from data_tools.maps.bundle import ConditionBundle

    rng = np.random.default_rng(0)
    for name, frames in (("hand_keypoints", 17), ("seg_mask", 17), ("depth", 3)):
        write_video(tmp_path / f"{name}.mp4", rng.integers(0, 255, (frames, 32, 48, 3), dtype=np.uint8))
    with pytest.raises(DataError, match=r"differ in frame count \{'hand_keypoints': 17, 'seg_mask': 17, 'depth': 3\}"):
        ConditionBundle.from_video_folder(tmp_path, ["hand_keypoints", "seg_mask", "depth"], num_frames=9)
    with pytest.raises(DataError, match=r"depth.mp4: has 3 frames; time sampling 'first' needs at least 9"):
        ConditionBundle.from_video_folder(tmp_path, ["hand_keypoints", "seg_mask", "depth"], num_frames=9,
                                          time_sampling="first")
    bundle = ConditionBundle.from_video_folder(tmp_path, ["hand_keypoints", "seg_mask", "depth"], num_frames=3,
                                               time_sampling="first")
    assert bundle.num_frames == 3
