"""Appearance stage: training steps with resume on a tiny processed dataset, inference on the DexYCB sample
and on a sim folder (images, grid and chosen-first-frame list)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from appearance_gen import infer
from appearance_gen.config import load_appearance_config
from appearance_gen.convert_ckpt import convert
from appearance_gen.model import AppearanceControlNets
from appearance_gen.train import sample_sigmas, train
from data_tools.maps.bundle import ConditionBundle
from data_tools.io.filelists import read_filelist
from data_tools.datasets.hoi_dataset import write_split
from data_tools.runtime.training import read_train_log
from data_tools.io.video_io import read_image

CONFIG = "configs/appearance/tiny.yaml"
MAPS = ("hand_keypoints", "depth", "seg_mask", "normal")


def _bundle(rng, name, t=3, h=64, w=96, prompt="a hand grasps a mug"):
    frames = lambda: rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)  # noqa: E731
    return ConditionBundle({m: frames() for m in MAPS}, prompt=prompt, video=frames(), name=name)


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("hoi")
    rng = np.random.default_rng(0)
    for split, clips in {"train": ["s0/a/cam0", "s0/b/cam0"], "val": ["s1/c/cam0"]}.items():
        for clip in clips:
            _bundle(rng, clip).save_video_folder(root / clip)
        write_split(root, split, clips, [f"a hand holds object {i}" for i in range(len(clips))],
                    columns=("video",) + MAPS)
    write_split(root, "no_normal", ["s0/a/cam0"], ["a hand"], columns=("video", "hand_keypoints", "depth", "seg_mask"))
    return str(root)


def test_split_without_normals_estimates_them_from_depth(dataset_root):
    from appearance_gen.conditions import normals_from_depth
    from appearance_gen.train import frame_dataset
    from data_tools.maps.bundle import from_model_range, to_model_range
    from data_tools.errors import DataError

    cfg = load_appearance_config(CONFIG, [f"data.root={dataset_root}", "data.split=no_normal"])
    physical = frame_dataset(cfg, "no_normal")[0]["conditions"]["physical"]
    assert physical.shape == (6, 64, 96)
    depth = from_model_range(physical[:3])
    assert torch.equal(physical[3:], to_model_range(normals_from_depth(depth)))
    cfg.data.normal_source = "file"
    with pytest.raises(DataError, match="normal"):
        frame_dataset(cfg, "no_normal")


def test_sigma_sampling_shift_moves_noise_levels_up():
    cfg = load_appearance_config(CONFIG).train
    sched = {"base_image_seq_len": 256, "max_image_seq_len": 4096, "base_shift": 0.5, "max_shift": 1.15}
    gen = torch.Generator().manual_seed(0)
    shifted = sample_sigmas(4000, 1350, cfg, sched, gen)  # 480x720 -> 30x45 tokens: mu = 0.65/3840 * 1350 + 0.45667 = 0.68518
    assert shifted.min() > 0 and shifted.max() < 1
    gen = torch.Generator().manual_seed(0)
    u = torch.sigmoid(torch.randn(4000, generator=gen))
    expected = np.exp(0.68518) / (np.exp(0.68518) + (1 / u - 1))
    assert torch.allclose(shifted, expected.float(), atol=1e-4)
    assert shifted.mean() > u.mean() + 0.1
    cfg.timestep_sampling = "uniform"
    uniform = sample_sigmas(4000, 1350, cfg, sched)
    assert 0 <= uniform.min() and uniform.max() <= 1 and abs(uniform.mean() - 0.5) < 0.03


def test_every_trainable_parameter_gets_a_gradient_and_base_stays_frozen(dataset_root):
    """DDP and DeepSpeed refuse trainable parameters without gradients; the base must not train."""
    from accelerate import Accelerator

    from appearance_gen.train import AppearanceTrainingSpec, frame_dataset

    cfg = load_appearance_config(CONFIG, [f"data.root={dataset_root}"])
    spec = AppearanceTrainingSpec(cfg)
    accelerator = Accelerator(cpu=True)
    spec.setup(accelerator)
    batch = spec.collate([frame_dataset(cfg, "train")[0]])
    assert batch["conditions"]["physical"].shape == (1, 6, 64, 96) and batch["pixel_values"].shape == (1, 3, 64, 96)
    spec.compute_loss(spec.trainable_module(), batch, accelerator).backward()
    trainable = [(n, p) for n, p in spec.controlnets.named_parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None for _, p in trainable), [n for n, p in trainable if p.grad is None]
    for module in spec.components.frozen_modules():
        assert not any(p.requires_grad for p in module.parameters())


def test_two_training_steps_then_resume(dataset_root, tmp_path):
    out = tmp_path / "run"
    overrides = [f"data.root={dataset_root}", f"train.loop.output_dir={out}", "train.loop.max_steps=2",
                 "train.loop.checkpoint_every=1", "train.loop.validate_every=2"]
    cfg = load_appearance_config(CONFIG, overrides)
    summary = train(cfg)
    assert summary["step"] == 2 and len(summary["losses"]) == 2
    assert all(np.isfinite(summary["losses"]))
    assert os.path.isdir(out / "checkpoints" / "checkpoint-2")
    assert (out / "validation" / "step-2" / "val_00.png").is_file()
    first = AppearanceControlNets.from_pretrained(out / "final")
    init_cfg = load_appearance_config(CONFIG)
    # training moved the zero-initialised output projections of both branches
    for name in ("physical", "semantic"):
        assert torch.count_nonzero(first.controlnets[name].controlnet_blocks[0].weight) > 0
    # checkpoints hold the trained parameters only (not the frozen, unused text-stream output of the last block)
    trained = {n for n, p in AppearanceControlNets.from_pretrained(out / "final").set_trainable().named_parameters()
               if p.requires_grad}
    assert set(load_file(str(out / "checkpoints" / "checkpoint-2" / "model.safetensors"))) == trained
    assert len(trained) < len(first.state_dict())
    # an intermediate checkpoint (accelerate's model.safetensors, no config.json) converts to the same weights,
    # the frozen ones rebuilt from the run config
    converted = AppearanceControlNets.from_pretrained(convert(str(out / "checkpoints" / "checkpoint-1"),
                                                              str(tmp_path / "step1")))
    assert converted.config.branches == first.config.branches
    assert any(not torch.equal(v, first.state_dict()[k]) for k, v in converted.state_dict().items())
    converted = AppearanceControlNets.from_pretrained(convert(str(out), str(tmp_path / "latest")))
    assert all(torch.equal(v, first.state_dict()[k]) for k, v in converted.state_dict().items())

    resumed = train(load_appearance_config(CONFIG, overrides[:-3] + ["train.loop.max_steps=3",
                                                                     "train.loop.checkpoint_every=1"]))
    assert resumed["step"] == 3 and len(resumed["losses"]) == 1  # only the third step ran
    assert [r["step"] for r in read_train_log(str(out))] == [1, 2, 3]
    second = AppearanceControlNets.from_pretrained(out / "final")
    a, b = first.state_dict(), second.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert init_cfg.controlnet.branches == {k: list(v) for k, v in second.branches.items()}


def _check_outputs(out, name, seeds, chosen):
    manifest = json.loads((out / "manifest.json").read_text())["sequences"]
    assert [r["name"] for r in manifest] == [name]
    for s in seeds:
        img = read_image(out / name / f"seed_{s}.png")
        assert img.shape == (64, 96, 3)
    grid = read_image(out / name / "grid.png")
    assert grid.shape[1] > 6 * 64  # 4 condition columns + 2 candidates side by side
    assert read_filelist(out / "first_frames.txt") == [f"{name}/seed_{chosen}.png"]


def test_infer_on_dexycb_sample_first_frame(sample_dir, tmp_path):
    out = tmp_path / "dex"
    assert infer.main(["folders", sample_dir, "--out", str(out), "--seeds", "0", "1", "--prompt", "a hand grasps a can"]) == 0
    _check_outputs(out, "dexycb_val", [0, 1], 0)
    assert read_filelist(out / "sequences.txt") == [sample_dir]
    first = read_image(out / "dexycb_val" / "seed_0.png")
    # choosing another seed afterwards rewrites only the list
    assert infer.main(["choose", "--out", str(out), "--choice", "dexycb_val=1"]) == 0
    assert read_filelist(out / "first_frames.txt") == ["dexycb_val/seed_1.png"]
    assert np.array_equal(read_image(out / "dexycb_val" / "seed_0.png"), first)


def test_infer_on_sim_folder(tmp_path):
    rng = np.random.default_rng(1)
    bundle = _bundle(rng, "seq", t=2, h=48, w=80, prompt="a hand lifts a box")
    bundle.extras["rgb"] = bundle.video
    bundle.video = None
    sim = tmp_path / "sim" / "seq_007"
    bundle.save_sim_folder(sim)
    assert (sim / "rendered_depth_1.png").is_file()
    out = tmp_path / "out"
    args = ["sim", str(sim), "--out", str(out), "--seeds", "3", "5", "--size", "64", "96"]
    assert infer.main(args + ["--choice", "seq_007=5"]) == 0
    _check_outputs(out, "seq_007", [3, 5], 5)
    manifest = json.loads((out / "manifest.json").read_text())["sequences"][0]
    assert manifest["prompt"] == "a hand lifts a box" and manifest["source"] == str(sim)
    # a rerun keeps existing candidates (resumable) and an unknown seed is refused
    stamp = os.path.getmtime(out / "seq_007" / "seed_3.png")
    assert infer.main(args + ["--chosen-seed", "3"]) == 0
    assert os.path.getmtime(out / "seq_007" / "seed_3.png") == stamp
    assert read_filelist(out / "first_frames.txt") == ["seq_007/seed_3.png"]
    with pytest.raises(Exception, match="no candidate for seed 4"):
        infer.main(["choose", "--out", str(out), "--choice", "seq_007=4"])


def test_infer_on_dataset_split(dataset_root, tmp_path):
    out = tmp_path / "val"
    assert infer.main(["dataset", "--root", dataset_root, "--split", "train", "--limit", "1", "--out", str(out),
                       "--seeds", "0", "2", "--chosen-seed", "2"]) == 0
    assert read_filelist(out / "first_frames.txt") == ["s0/a/cam0/seed_2.png"]
    assert read_filelist(out / "sequences.txt") == [os.path.join(dataset_root, "s0/a/cam0")]
    assert (out / "s0/a/cam0/grid.png").is_file()
    manifest = json.loads((out / "manifest.json").read_text())["sequences"]
    assert manifest[0]["prompt"] == "a hand holds object 0"


def test_seed_resume_mid_epoch_continues_the_uninterrupted_run(dataset_root, tmp_path):
    """Stopped after step 1 (mid epoch: 2 clips, batch 1) and resumed to step 2 == 2 steps in one go: frames,
    noise and sigmas continue the same streams (constant LR, so max_steps does not change the schedule)."""
    common = [f"data.root={dataset_root}", "train.loop.checkpoint_every=1", "train.loop.seed=5"]
    whole = train(load_appearance_config(CONFIG, common + [f"train.loop.output_dir={tmp_path / 'a'}",
                                                           "train.loop.max_steps=2"]))
    part = [f"train.loop.output_dir={tmp_path / 'b'}"]
    first = train(load_appearance_config(CONFIG, common + part + ["train.loop.max_steps=1"]))
    rest = train(load_appearance_config(CONFIG, common + part + ["train.loop.max_steps=2"]))
    assert len(rest["losses"]) == 1
    assert first["losses"] + rest["losses"] == pytest.approx(whole["losses"], rel=1e-6)


def test_seed_frame_choice_depends_on_seed_epoch_and_clip_only(dataset_root):
    from appearance_gen.train import frame_dataset

    cfg = load_appearance_config(CONFIG, [f"data.root={dataset_root}", "data.frames_per_clip=3"])
    data = frame_dataset(cfg, "train")
    picks = {}
    for epoch in range(6):
        data.set_epoch(epoch)
        torch.manual_seed(epoch)  # the global RNG plays no part
        picks[epoch] = data[0]["pixel_values"]
    data.set_epoch(2)
    assert torch.equal(data[0]["pixel_values"], picks[2])
    assert len({p.sum().item() for p in picks.values()}) > 1  # some epochs draw another frame


def test_missing_paths_fail_at_start_up_in_one_error(dataset_root, tmp_path):
    from data_tools.errors import DataError

    cfg = load_appearance_config(CONFIG, [f"data.root={tmp_path / 'none'}", "train.loop.validate_every=2",
                                          "model.source=pretrained", f"model.base_path={tmp_path / 'flux'}",
                                          f"train.loop.output_dir={tmp_path / 'run'}"])
    with pytest.raises(DataError, match=r"3 path.*data.split \(train of data.root\)=.*none/filelists/train.*"
                                        r"model.base_path=.*flux.*data.val_split \(val of data.root\)"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_infer_refuses_real_flux_without_trained_branches(tmp_path, caplog):
    """flux_dev.yaml with no model.controlnet_path would run new, untrained branches: exit 2 before loading."""
    out = tmp_path / "out"
    assert infer.main(["sim", str(tmp_path), "--out", str(out), "--config", "configs/appearance/flux_dev.yaml"]) == 2
    assert "model.controlnet_path is not set" in caplog.text and not out.exists()
