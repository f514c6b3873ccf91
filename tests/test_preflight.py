"""scripts/check_node.sh / sim2real.preflight: runs on this CPU machine ("no GPU", exit 0), the driver rule, the
T5 tokenizer check, the memory formula, and blocking problems in a model folder (exit 1)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim2real import preflight

ROOT = Path(__file__).resolve().parents[1]


def test_check_node_runs_on_a_cpu_machine():
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    env.update(PAM_VENV="none", PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    out = subprocess.run(["bash", str(ROOT / "scripts/check_node.sh")], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[ok] no GPU" in out.stdout and "preflight: 0 blocking problem(s)" in out.stdout


@pytest.mark.parametrize("cuda,driver,fits", [
    ("13.0", "535.104.05", False),   # PyPI's torch 2.13 on a CUDA 12.1-era driver
    ("13.0", "580.65.06", True),
    ("12.8", "535.104.05", True),    # torch 2.10.0 (cu128) through minor-version compatibility
    ("12.8", "470.82.01", False),
    (None, "550.54.15", False),      # a CPU build of torch on a GPU node
    ("13.0", None, True),            # no driver: nothing to fit
])
def test_driver_fits(cuda, driver, fits):
    ok, why = preflight.driver_fits(cuda, driver)
    assert ok is fits, why
    if cuda == "13.0" and not fits:
        assert "580" in why and "PAM_TORCH_VERSION=2.10.0" in why


def _t5_tokenizer_folder(tmp_path: Path) -> Path:
    """A T5 tokenizer folder as released: spiece.model (trained here) + tokenizer_config.json, no tokenizer.json."""
    import sentencepiece as spm

    folder = tmp_path / "tokenizer"
    folder.mkdir()
    text = tmp_path / "text.txt"
    text.write_text("\n".join(f"a hand grasps the {w} and lifts it slowly" for w in
                              ("can", "mug", "box", "bottle", "banana", "drill", "bowl", "cup")) * 20)
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(folder / "spiece"), vocab_size=30,
                                   minloglevel=2)
    (folder / "spiece.vocab").unlink()
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer", "extra_ids": 0}))
    return folder


def test_t5_tokenizer_with_only_spiece_model(tmp_path, monkeypatch):
    folder = _t5_tokenizer_folder(tmp_path)
    assert preflight.check_tokenizer(str(folder)) is None  # loads: sentencepiece and protobuf are dependencies
    real_find_spec = preflight.importlib.util.find_spec
    monkeypatch.setattr(preflight.importlib.util, "find_spec",
                        lambda name, *a: None if name == "sentencepiece" else real_find_spec(name, *a))
    problem = preflight.check_tokenizer(str(folder))
    assert problem and "only spiece.model" in problem and "which needs sentencepiece (" in problem


def test_memory_formula_by_hand():
    G = preflight.GiB
    params = {"base": G, "branch": G, "text_encoder": G, "vae": 0}  # counts chosen so that bytes read as GiB
    # training, ZeRO-2 over 4 GPUs: frozen base 2 bytes + branch (2 + 16 / 4) bytes per parameter
    assert preflight.memory_per_gpu_gib(params, "train", 4, True, 1.0) == pytest.approx(2 + 6 + 1)
    assert preflight.memory_per_gpu_gib(params, "train", 4, False, 0.0) == pytest.approx(2 + 18)
    # inference: everything in bf16, or one component at a time with CPU offload (base + branch is the largest)
    assert preflight.memory_per_gpu_gib(params, "infer", 1, True, 0.0) == pytest.approx(6)
    assert preflight.memory_per_gpu_gib(params, "infer", 1, True, 0.0, cpu_offload=True) == pytest.approx(4)
    # fp32 compute over bf16 weights (appearance compute_dtype: float32): the weights are held in fp32
    assert preflight.memory_per_gpu_gib(params, "infer", 1, True, 0.0, weight_bytes=4) == pytest.approx(12)


def test_model_folder_problems_are_blocking(tmp_path, capsys):
    root = tmp_path / "CogVideoX-5b-I2V"
    for sub in ("text_encoder", "vae", "transformer"):
        (root / sub).mkdir(parents=True)
        (root / sub / "config.json").write_text("{}")
    (root / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"")  # text_encoder, transformer: no weights
    os.rename(_t5_tokenizer_folder(tmp_path), root / "tokenizer")
    config = tmp_path / "motion.yaml"
    config.write_text(f"model: {{pretrained: {root}, transformer: null}}\n")
    assert preflight.main(["--motion-config", str(config), "--outputs", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"[FAIL] motion ({config}) model.pretrained text_encoder: {root}/text_encoder has no weights" in out
    assert f"[ok] motion ({config}) model.pretrained vae: {root}/vae" in out
    assert f"[ok] motion ({config}) model.pretrained tokenizer loads" in out
    assert "motion infer on 1 GPU(s): ~" in out and "preflight: 2 blocking problem(s)" in out


def test_build_tools_for_deepspeed_cpu_adam(monkeypatch):
    """cpu_adam (ZeRO optimizer offload) is a C++ extension built at first use: no compiler or no ninja warns."""
    import shutil

    from sim2real import preflight

    real_which = shutil.which
    for absent, named in (({"ninja"}, "no ninja"), ({"c++", "g++", "clang++"}, "no a C++ compiler")):
        monkeypatch.setattr(preflight.shutil, "which", lambda name, absent=absent: None if name in absent
                            else real_which(name) or f"/usr/bin/{name}")
        monkeypatch.setattr(preflight.importlib.util, "find_spec", lambda name: None)
        report = preflight.Report()
        preflight.check_build_tools(report)
        assert report.lines[0][0] == "warn" and named in report.lines[0][1] and "cpu_adam" in report.lines[0][1]
    monkeypatch.setattr(preflight.shutil, "which", lambda name: f"/usr/bin/{name}")
    report = preflight.Report()
    preflight.check_build_tools(report)
    assert report.lines[0][0] == "ok"


def test_training_estimate_scales_with_batch_and_frames(monkeypatch):
    """configs/motion/dexycb.yaml (batch 4, 49 frames, validation on): the hand count of the GPU review,
    about 79 GiB on one GPU and about 60 GiB per GPU on 4 with ZeRO-2, from the CogVideoX-5b-I2V sizes."""
    from motion_gen.config import load_motion_config

    G = preflight.GiB
    params = {"base": 5.570e9, "branch": 1.96e9, "text_encoder": 4.762e9, "vae": 2.16e8}
    monkeypatch.setattr(preflight, "motion_params", lambda cfg: params)
    cfg = load_motion_config("configs/motion/dexycb.yaml")
    assert (cfg.train.loop.batch_size, cfg.generate.num_frames) == (4, 49) and cfg.train.loop.validate_every
    buckets = (5e8 + 5e8) * 2 / G
    t5 = 4.762e9 * 2 / G
    frozen = (5.570e9 + 2.16e8) * 2 / G
    one = preflight.check_memory(preflight.Report(), "motion", cfg, "train", [], 1, False)
    assert one == pytest.approx(frozen + 1.96e9 * 18 / G + 4 * 9.5 + t5)
    four = preflight.check_memory(preflight.Report(), "motion", cfg, "train", [], 4, True)
    assert four == pytest.approx(frozen + 1.96e9 * (2 + 16 / 4) / G + 4 * 9.5 + buckets + t5)
    assert 75 < one < 95 and 55 < four < 75
    # batch 1 at 25 frames: a quarter-batch of half-length clips
    small = preflight.check_memory(preflight.Report(), "motion", cfg, "train", [], 4, True, batch=1)
    assert four - small == pytest.approx(3 * 9.5)
    cfg.generate.num_frames = 25
    assert preflight.check_memory(preflight.Report(), "motion", cfg, "train", [], 4, True, batch=1) == \
        pytest.approx(small - 9.5 * 24 / 49)


def test_bench_real_takes_the_batch(monkeypatch, tmp_path):
    """``motion_gen.bench --real --batch 4`` measures a micro-batch of 4, comparable with the preflight's estimate."""
    from motion_gen import bench

    seen = {}
    monkeypatch.setattr(bench, "bench_real", lambda **kw: seen.update(kw) or {"batch": kw["batch"]})
    bench.main(["--real", "--batch", "4", "--out", str(tmp_path / "m.json")])
    assert seen["batch"] == 4 and json.loads((tmp_path / "m.json").read_text()) == {"real": {"batch": 4}}


def test_checkpoint_disk_check_counts_the_trained_parameters_only(monkeypatch, tmp_path):
    """configs/motion/dexycb.yaml keeps 3 checkpoints: 4 exist while the next is written, each the branch's fp32
    weights and Adam moments (12 bytes a parameter, 14 with ZeRO-2's bf16 copy), not the frozen 5.6B base; plus the
    final transformer. Too little free disk is blocking."""
    import collections

    from motion_gen.config import load_motion_config

    G = preflight.GiB
    params = {"base": 5.570e9, "branch": 1.96e9, "text_encoder": 4.762e9, "vae": 2.16e8}
    cfg = load_motion_config("configs/motion/dexycb.yaml", [f"train.loop.output_dir={tmp_path / 'run'}"])
    need = 4 * 1.96e9 * 12 / G + (5.570e9 * 2 + 1.96e9 * 4) / G
    assert preflight.checkpoint_gib("motion", params, False)["checkpoint"] == pytest.approx(21.9, abs=0.1)
    usage = collections.namedtuple("usage", "total used free")
    for free, level in ((need + 1, "ok"), (need - 1, "FAIL")):
        monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path, free=free: usage(0, 0, free * G))
        report = preflight.Report()
        assert preflight.check_checkpoint_disk(report, "motion", cfg, params, False) == pytest.approx(need)
        assert report.lines[0][0] == level and "4 x 21.9 GiB" in report.lines[0][1]
    zero2 = preflight.check_checkpoint_disk(preflight.Report(), "motion", cfg, params, True)
    assert zero2 - need == pytest.approx(4 * 1.96e9 * 2 / G)


def test_training_the_base_counts_it_as_trained():
    """With train.train_base (as configs/motion/toy_world.yaml) the base is in the optimizer and the checkpoints:
    the counts move it from frozen to trained, so checkpoint and memory estimates grow with it."""
    from motion_gen.config import load_motion_config

    frozen = preflight.motion_params(load_motion_config("configs/motion/dexycb.yaml"))
    trained = preflight.motion_params(load_motion_config("configs/motion/dexycb.yaml", ["train.train_base=true"]))
    assert trained["base"] == 0 and trained["branch"] == frozen["base"] + frozen["branch"] > 7e9
    assert (preflight.checkpoint_gib("motion", trained, False)["checkpoint"]
            == pytest.approx(12 * (frozen["base"] + frozen["branch"]) / preflight.GiB))


def test_the_memory_table_in_gpu_nodes_md_is_the_preflights():
    """Each row of docs/gpu_nodes.md's training table (config, micro-batch, 1/4/8 GPUs, ZeRO-2 as the training
    scripts launch it) equals the preflight's estimate rounded as it prints it."""
    import re

    from appearance_gen.config import load_appearance_config
    from motion_gen.config import load_motion_config

    rows = re.findall(r"^\| `(configs/\S+\.yaml)`[^|]*\| (\d+)[^|]*\| (\d+) GiB \| (\d+) GiB \| (\d+) GiB \|$",
                      (ROOT / "docs/gpu_nodes.md").read_text(), re.M)
    assert len(rows) == 4
    for path, batch, *per_gpus in rows:
        stage = "motion" if path.startswith("configs/motion/") else "appearance"
        cfg = (load_motion_config if stage == "motion" else load_appearance_config)(str(ROOT / path))
        for gpus, documented in zip((1, 4, 8), per_gpus):
            estimate = preflight.memory_estimate(stage, cfg, "train", gpus, True, int(batch)).gib
            assert f"{estimate:.0f}" == documented, (path, batch, gpus, estimate)
