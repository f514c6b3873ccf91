"""``sim2real.release`` end to end on CPU against a fake release (tiny random weights in the downloaded layouts)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from data_tools.errors import DataError
from data_tools.io.video_io import read_video
from release_fixtures import make_fake_release
from sim2real import release
from sim2real.release import ReleaseWeights, check_release

STREAMS = ("tracking", "normal", "depth", "seg_mask", "hand_keypoints")
SMALL = ["num_frames=9", "height=32", "width=48", "seeds=[0]", "appearance_steps=1", "motion_steps=1",
         "appearance_overrides=[sampling.size=null,model.dtype=float32]"]


@pytest.fixture(scope="module")
def fake_release(tmp_path_factory):
    """The fake release and one trajectory to run (rendered by sim2real in the pam_release style)."""
    from data_tools.pose.objects import builtin_object
    from data_tools.pose.procedural_hand import procedural_hand
    from data_tools.pose.trajectory import generate_grasp_trajectory, save_trajectory

    root = tmp_path_factory.mktemp("release")
    paths = make_fake_release(root)
    (root / "inputs").mkdir()
    hand = procedural_hand()
    traj = generate_grasp_trajectory(hand, builtin_object("gelatin_box"), "gelatin_box", num_frames=9, height=32,
                                     width=48, seed=1, name="grasp0")
    return root, paths, save_trajectory(traj, root / "inputs" / "grasp0.npz")


def _args(paths, root, clip, out):
    return ["--pam", paths["pam"], "--flux", paths["flux"], "--cogvideox", paths["cogvideox"],
            "--cache", str(root / "cache"), clip, "--out", str(out), "--set", *SMALL]


def test_release_end_to_end_on_cpu_converts_once(fake_release, tmp_path):
    root, paths, clip = fake_release
    assert release.main(_args(paths, root, clip, tmp_path / "out")) == 0
    manifest = json.loads((tmp_path / "out" / "grasp0" / "manifest.json").read_text())
    assert manifest["num_frames"] == 9 and manifest["size"] == [32, 48]
    # the released model's five streams in its order; pam_release feeds normal as a fixed grey video
    assert manifest["conditions"]["motion"] == [n for n in STREAMS if n != "normal"]
    assert manifest["config"]["style"] == "pam_release"
    assert os.path.isfile(tmp_path / "out" / "grasp0" / "conditions" / "tracking.mp4")
    assert read_video(manifest["outputs"]["video"]).shape == (9, 32, 48, 3)
    appearance = manifest["model_configs"]["appearance"]["model"]
    assert appearance["controlnet_path"] == str(root / "cache" / "appearance")
    assert appearance["base_path"] == paths["flux"]
    assert manifest["model_configs"]["appearance"]["sampling"]["guidance_scale"] == 4.0
    assert manifest["model_configs"]["motion"]["model"]["transformer"] == str(root / "cache" / "motion")
    stamp = (root / "cache" / "appearance" / "converted_from.json").stat().st_mtime
    # the second run goes through the bash entry point in this (active) environment and reuses the cache
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    env.update(PAM_VENV="none", PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    script = Path(__file__).resolve().parents[1] / "scripts" / "sim2real_release.sh"
    done = subprocess.run(["bash", str(script), *_args(paths, root, clip, tmp_path / "again")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "already converted" in done.stderr
    assert read_video(tmp_path / "again" / "grasp0" / "video.mp4").shape == (9, 32, 48, 3)
    assert (root / "cache" / "appearance" / "converted_from.json").stat().st_mtime == stamp


def test_release_layout_check_lists_every_missing_file(fake_release, tmp_path):
    root, paths, _ = fake_release
    broken = tmp_path / "broken"
    for name in ("PAM", "FLUX.1-dev", "CogVideoX-5b-I2V"):
        shutil.copytree(root / name, broken / name)
    (broken / "PAM" / "appearance_gen" / "controlnet.bin").unlink()
    os.remove(broken / "FLUX.1-dev" / "tokenizer_2" / "tokenizer.json")
    shutil.rmtree(broken / "CogVideoX-5b-I2V" / "vae")
    os.remove(broken / "CogVideoX-5b-I2V" / "scheduler" / "scheduler_config.json")
    weights = ReleaseWeights(pam=str(broken / "PAM"), flux=str(broken / "FLUX.1-dev"),
                             cogvideox=str(broken / "CogVideoX-5b-I2V"))
    with pytest.raises(DataError) as info:
        check_release(weights)
    message = str(info.value)
    assert "4 problems" in message and "\n" not in message
    for part in ("no appearance checkpoint (controlnet.bin", "tokenizer_2: no vocabulary", "CogVideoX-5b-I2V/vae: missing",
                 "scheduler/scheduler_config.json: missing"):
        assert part in message
    # a T5 tokenizer shipped as spiece.model only (CogVideoX-5b-I2V's) loads only with sentencepiece + protobuf
    (broken / "FLUX.1-dev" / "tokenizer_2" / "spiece.model").write_bytes(b"")
    from importlib.util import find_spec

    from sim2real.release import tokenizer_problem

    problem = tokenizer_problem(str(broken / "FLUX.1-dev" / "tokenizer_2"))
    if find_spec("sentencepiece") and find_spec("google"):
        assert problem is None
    else:
        assert "pip install sentencepiece protobuf" in problem
    with pytest.raises(DataError, match="no folder given"):
        check_release(ReleaseWeights(pam=paths["pam"], flux=paths["flux"]))
    assert check_release(ReleaseWeights(**paths)).controlnet.endswith("controlnet.bin")


def test_release_checks_inputs_before_converting(fake_release, tmp_path, capsys):
    """A bad input stops the command with one line and exit status 2, before anything is converted."""
    from data_tools.io.cli import run_cli

    root, paths, _ = fake_release
    args = _args(paths, root, str(tmp_path / "missing_input"), tmp_path / "out")
    args[args.index("--cache") + 1] = str(tmp_path / "cache")
    assert run_cli(release.main, args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "missing_input" in err[0]
    assert not (tmp_path / "cache").exists()
    assert run_cli(release.main, ["--pam", str(tmp_path), "--cache", str(tmp_path / "cache"), "x"]) == 2
    assert "the weight folders are incomplete" in capsys.readouterr().err


def test_release_config_points_both_stages_at_the_weights():
    from data_tools.io.config import load_config
    from sim2real.release import ReleaseConfig, release_sim2real_config

    cfg = load_config(ReleaseConfig, "configs/sim2real/pam_release.yaml")
    assert (cfg.num_frames, cfg.height, cfg.width) == (49, 480, 640)
    plain = release_sim2real_config(cfg, "cache/a", "cache/m", offload=True)
    assert plain.appearance_overrides == [f"model.base_path={cfg.weights.flux}", "model.controlnet_path=cache/a",
                                          "model.cpu_offload=true"]
    assert plain.motion_overrides == [f"model.pretrained={cfg.weights.cogvideox}", "model.transformer=cache/m",
                                      "generate.cpu_offload=true"]
    assert "model.cpu_offload=true" not in release_sim2real_config(cfg, "a", "m", offload=False).appearance_overrides


NEGATIVE = ("The video is not of a high quality, it has a low resolution. Watermark present in each frame. The "
            "background is solid. Strange body and strange trajectory. Distortion.")


def test_release_feeds_what_the_models_were_trained_on(fake_release, tmp_path, monkeypatch):
    """The whole release path, checked where each pipeline is called against the reference's recipe computed
    independently (docs/sim2real.md, "What pam_release feeds the models"): 4:3 inputs (here 32x32; DexYCB's
    480x640) stretched to the motion model's own size (32x48; 480x720) with the training interpolation, the first
    frame by PIL's lanczos, consecutive frames at 30 fps, blank normals for appearance, the reference's prompts,
    negative prompt, dynamic CFG at guidance 6 and seeds 42 + j / 42."""
    import numpy as np
    import torch
    from PIL import Image

    from appearance_gen.pipeline import AppearancePipeline
    from data_tools.pose.render import RenderConfig, render_trajectory
    from data_tools.pose.trajectory import load_trajectory
    from motion_gen.pipeline import CogVideoXConditionPipeline

    calls = {}

    def spy(cls, name):
        original = cls.__call__

        def call(self, *args, **kwargs):
            calls[name] = (args, kwargs)
            return original(self, *args, **kwargs)
        monkeypatch.setattr(cls, "__call__", call)

    spy(AppearancePipeline, "appearance")
    spy(CogVideoXConditionPipeline, "motion")
    root, paths, clip = fake_release
    args = ["--pam", paths["pam"], "--flux", paths["flux"], "--cogvideox", paths["cogvideox"], "--cache",
            str(root / "cache"), clip, "--out", str(tmp_path / "out"), "--set", "num_frames=9", "height=32",
            "width=32", "appearance_steps=1", "motion_steps=1", "appearance_overrides=[sampling.size=null]"]
    assert release.main(args) == 0

    # independent: the 15 fps trajectory seen at 30 fps, so output frame 2k is source frame k
    traj = load_trajectory(clip)
    assert traj.fps == 15
    source = render_trajectory(traj, RenderConfig(height=32, width=32, style="pam_release"), progress=False)

    (prompt, branch_inputs, generators), options = calls["appearance"]
    assert prompt == "A hand is trying to grasp something"
    assert [g.initial_seed() for g in generators] == [42, 43, 44, 45]
    physical, semantic = branch_inputs["physical"][0], branch_inputs["semantic"][0]
    assert physical.shape == (6, 32, 32) and semantic.shape == (6, 32, 32)
    assert torch.all(physical[3:] == -1)                                   # normal: blank, as trained
    to_range = lambda a: torch.from_numpy(a).permute(2, 0, 1).float() / 127.5 - 1  # noqa: E731
    torch.testing.assert_close(physical[:3].float(), to_range(source.conditions["depth"][0]))
    torch.testing.assert_close(semantic[:3].float(), to_range(source.conditions["hand_keypoints"][0]))
    assert options["num_inference_steps"] == 1

    motion = calls["motion"][1]
    assert motion["prompt"] == "A man is in a lab trying to grasp something."
    assert motion["negative_prompt"] == NEGATIVE
    assert motion["use_dynamic_cfg"] is True and motion["guidance_scale"] == 6.0
    assert motion["generator"].initial_seed() == 42
    assert (motion["height"], motion["width"], motion["num_frames"]) == (32, 48, 9)
    conditions = motion["conditions"]
    for name, mode in (("hand_keypoints", "nearest"), ("seg_mask", "nearest"), ("depth", "bilinear"),
                       ("tracking", "bilinear")):
        got = conditions[name]
        assert got.shape == (9, 32, 48, 3), name
        want = torch.nn.functional.interpolate(torch.from_numpy(source.conditions[name][:5]).permute(0, 3, 1, 2)
                                               .float(), size=(32, 48), mode=mode)   # torchvision's resize
        want = want.round().clamp(0, 255).permute(0, 2, 3, 1).numpy()
        diff = np.abs(got[::2].astype(float) - want)                   # frames 0, 2, .., 8 = source frames 0..4
        assert diff.max() <= (0 if mode == "nearest" else 1), (name, diff.max())
    first = np.asarray(Image.open(tmp_path / "out" / "grasp0" / "first_frame.png").convert("RGB"))
    assert first.shape == (32, 32, 3)
    lanczos = np.asarray(Image.fromarray(first).resize((48, 32), Image.LANCZOS)).astype(np.float32) / 255
    np.testing.assert_allclose(motion["image"][0].permute(1, 2, 0).numpy(), lanczos, atol=1e-6)
    assert read_video(tmp_path / "out" / "grasp0" / "video.mp4").shape == (9, 32, 32, 3)
    # the labels are those of the same frames: video frame k is the 15 fps file's frame k / 2
    labels = np.load(tmp_path / "out" / "grasp0" / "pose_labels.npz")
    np.testing.assert_allclose(labels["source_frames"], np.arange(9) / 2)
    np.testing.assert_allclose(labels["hand_transl"][::2], traj.hand_transl[:5], atol=1e-12)
