"""scripts/gpu_checks.sh (run on a lent GPU machine, not here): its random real-size configs build the released
architectures at their real sizes, directly in bf16 on the requested device (checked on the meta device, and on
the CPU with the tiny configs); its step budgets fit the 9-minute window; on a CPU every step runs, fails at once
without a GPU and still reports its row with the preflight's estimate."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _billions(module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e9


def test_random_real_size_configs_have_the_released_sizes():
    from appearance_gen.components import tiny_components
    from appearance_gen.config import load_appearance_config
    from motion_gen.components import tiny_base_transformer, tiny_text_components, tiny_vae
    from motion_gen.config import load_motion_config

    motion = load_motion_config(str(ROOT / "configs/motion/random_real_size.yaml")).model.tiny
    appearance = load_appearance_config(str(ROOT / "configs/appearance/random_real_size.yaml"),
                                        ["model.tiny.init_device=meta"]).model
    with torch.device("meta"):
        transformer = tiny_base_transformer(motion, 49, 480, 720)
        assert _billions(transformer) == pytest.approx(5.570, abs=0.001)  # CogVideoX-5b-I2V transformer
        assert transformer.config.use_learned_positional_embeddings and transformer.config.sample_frames == 49
        assert _billions(tiny_vae(motion)) == pytest.approx(0.2156, abs=0.0001)  # CogVideoX VAE
        # T5-XXL encoder (4.762B) less its 32128-token embedding table, plus the byte tokenizer's
        t5_without_table = 4.762e9 - 32128 * 4096
        assert _billions(tiny_text_components(motion)[1]) * 1e9 == pytest.approx(t5_without_table + 384 * 4096,
                                                                                 rel=1e-3)
        flux = tiny_components(appearance.tiny, appearance.scheduler)
        assert _billions(flux.transformer) == pytest.approx(11.901, abs=0.001)  # FLUX.1-dev transformer
        assert _billions(flux.vae) == pytest.approx(0.0838, abs=0.0001)


def test_gpu_checks_script_parses_and_has_help():
    assert subprocess.run(["bash", "-n", str(ROOT / "scripts/gpu_checks.sh")]).returncode == 0
    out = subprocess.run(["bash", str(ROOT / "scripts/gpu_checks.sh"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "motion_real_gc" in out.stdout and "49x480x720" in out.stdout


def test_step_budgets_fit_nine_minutes_with_the_install():
    """Each step is stopped at the budget its `within` names, the header lists the same budgets, and they sum with
    the install to under 9 minutes; the environment is set up once and no step goes through a bench_*.sh
    (which would source _setup.sh again)."""
    text = (ROOT / "scripts/gpu_checks.sh").read_text()
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    steps = dict(re.findall(r"^step (\w+) within (\d+) ", text, re.M))
    assert len(steps) == 8 and "preflight" in steps
    install = int(re.search(r"install \(.*?(\d+) s$", header, re.M)[1])
    listed = [int(n) for n in re.findall(r"(\d+) s$", header, re.M)] + [20]  # "20 + 20 s": the two appearance runs
    assert sorted(listed) == sorted([install, *map(int, steps.values())])
    assert install + sum(map(int, steps.values())) < 9 * 60
    assert text.count('source "$(dirname "$0")/_setup.sh"') == 1 and not re.search(r"bench_\w+\.sh", text.split("steps_begin")[1])


def test_gpu_checks_runs_every_step_on_a_cpu(tmp_path):
    """Without a GPU each GPU step fails at once (exit 2, "no CUDA GPU") yet gets its row with the preflight's
    estimate beside an empty peak, and its JSON; the exit status counts the seven failed steps."""
    # `timeout` is replaced by a shim that records each step's limit and runs it without one: on a loaded machine a
    # CPU step (imports, the estimate) could pass its GPU budget and end 124 instead of failing for want of a GPU
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "timeout").write_text('#!/usr/bin/env bash\necho "$*" >> "$(dirname "$0")/limits"\nshift 2\nexec "$@"\n')
    (shim / "timeout").chmod(0o755)
    env = dict(os.environ, PAM_VENV="none", OMP_NUM_THREADS="1",
               PATH=f"{shim}:{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    done = subprocess.run(["bash", str(ROOT / "scripts/gpu_checks.sh"), str(tmp_path / "out")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 7, done.stdout[-2000:] + done.stderr[-2000:]
    limits = [line.split()[:2] for line in (shim / "limits").read_text().splitlines()]
    assert limits == [["--kill-after=5", s] for s in ("15", "45", "20", "80", "20", "20", "55", "70")]
    tmp_path = tmp_path / "out"
    rows = [r for r in (tmp_path / "summary.md").read_text().splitlines() if r.startswith("| ") and "`" in r]
    names = ["preflight", "motion_real_gc", "motion_real_no_gc", "motion_real_zero2_offload", "appearance_real",
             "appearance_real_gc", "sim2real_real_size", "motion_options"]
    assert [r.split(" | ")[0].strip("| ") for r in rows] == names
    for row, name in zip(rows[1:], names[1:]):
        cells = row.split(" | ")
        assert cells[2] == "2" and cells[4] == "-" and float(cells[5].strip(" |")) > 20, row
        record = json.loads((tmp_path / f"{name}.step.json").read_text())
        assert record["exit"] == 2 and "no CUDA GPU" in record["error"] and record["peak_memory_gib"] is None
        assert record["estimate_gib"] == pytest.approx(float(cells[5].strip(" |")), abs=0.06)
    assert rows[0].split(" | ")[2] == "0"  # the preflight passes on a CPU machine ("no GPU")


def _cpu_writes(build) -> int:
    """Bytes of fp32/bf16/fp16 CPU tensors that ``build()`` writes (allocations left empty not counted; float64,
    in which diffusers computes CogVideoX's sin/cos position table on the CPU, neither)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Writes(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else [out]:
                if (isinstance(t, torch.Tensor) and t.device.type == "cpu" and t.is_floating_point()
                        and t.dtype != torch.float64 and "empty" not in str(func)):
                    Writes.total += t.numel() * t.element_size()
            return out

    with Writes():
        result = build()
    return Writes.total, result


def test_real_size_random_weights_are_made_in_bf16_on_the_device():
    """With ``tiny.init_device`` (meta here, "auto" = the GPU in the configs) the ~30 B random real-size parameters
    of sim2real are made on that device in bf16: no fp32 CPU copy is ever written (kilobytes of scheduler tables
    are), and the counts are the released architectures'."""
    from appearance_gen.components import build_components, build_controlnets
    from appearance_gen.config import load_appearance_config
    from motion_gen.components import load_text_components, load_transformer, load_vae
    from motion_gen.config import load_motion_config

    motion = load_motion_config(str(ROOT / "configs/motion/random_real_size.yaml"), ["model.tiny.init_device=meta"])
    appearance = load_appearance_config(str(ROOT / "configs/appearance/random_real_size.yaml"),
                                        ["model.tiny.init_device=meta"])
    assert load_motion_config(str(ROOT / "configs/motion/random_real_size.yaml")).model.tiny.init_device == "auto"
    assert appearance.model.dtype == "bfloat16"

    def build():
        comps = build_components(appearance.model)
        return {"motion transformer": load_transformer(motion.model, motion.generate, torch.bfloat16),
                "motion T5": load_text_components(motion.model, torch.bfloat16)[1],
                "motion VAE": load_vae(motion.model, torch.bfloat16), "FLUX": comps.transformer,
                "FLUX T5": comps.text_encoder_2, "CLIP": comps.text_encoder, "FLUX VAE": comps.vae,
                "branches": build_controlnets(appearance, comps)}

    written, modules = _cpu_writes(build)
    params = [p for m in modules.values() for p in m.parameters()]
    assert {(p.dtype, p.device.type) for p in params} == {(torch.bfloat16, "meta")}
    assert sum(p.numel() for p in params) / 1e9 == pytest.approx(30.3, abs=0.1)
    assert _billions(modules["motion transformer"]) == pytest.approx(5.570 + 1.728, abs=0.001)
    assert _billions(modules["FLUX"]) == pytest.approx(11.901, abs=0.001)
    assert written < 1e6, written  # 30 B fp32 parameters would be 120 GB


def test_tiny_random_weights_made_in_bf16_on_the_cpu_are_finite_and_run(tmp_path):
    """The same path on the CPU with the tiny configs: parameters are bf16 from the start and finite, and the
    sim2real demo runs with both stages built that way."""
    from appearance_gen.components import build_components
    from appearance_gen.config import load_appearance_config
    from motion_gen.components import load_transformer
    from motion_gen.config import load_motion_config

    motion = load_motion_config(str(ROOT / "configs/motion/tiny.yaml"), ["model.tiny.init_device=cpu"])
    appearance = load_appearance_config(str(ROOT / "configs/appearance/tiny.yaml"),
                                        ["model.tiny.init_device=cpu", "model.dtype=bfloat16"])
    modules = [load_transformer(motion.model, motion.generate, torch.bfloat16), build_components(appearance.model).transformer]
    for module in modules:
        assert all(p.dtype == torch.bfloat16 and torch.isfinite(p).all() for p in module.parameters())
    done = subprocess.run(
        [sys.executable, "-m", "sim2real.demo", "--out", str(tmp_path), "--frames", "9", "--height", "64", "--width", "96",
         "--set", "appearance_overrides=[model.tiny.init_device=cpu, model.dtype=bfloat16]",
         "motion_overrides=[model.tiny.init_device=cpu]", "appearance_steps=1", "motion_steps=1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "sim2real" / "procedural_mustard_bottle" / "video.mp4").is_file()


def test_every_step_runs_and_the_exit_status_counts_the_failures(tmp_path):
    """The step runner of scripts/gpu_checks.sh, sourced after ``set -e`` as _setup.sh leaves it: a failing step
    is logged and summarised, the later steps still run, and the exit status is the number of failures."""
    script = (f"set -euo pipefail; source {ROOT}/scripts/_steps.sh; steps_begin {tmp_path}; "
              "step first false; step second echo ran; step third bash -c 'exit 3'; steps_end")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert done.returncode == 2, done.stdout + done.stderr
    rows = (tmp_path / "summary.md").read_text().splitlines()[2:]
    assert [row.split(" | ")[0].strip("| ") for row in rows] == ["first", "second", "third"]
    assert [row.split(" | ")[2] for row in rows] == ["1", "0", "3"]
    assert (tmp_path / "second.log").read_text() == "ran\n"
    text = (ROOT / "scripts/gpu_checks.sh").read_text()
    assert text.index("_setup.sh") < text.index("_steps.sh") and "steps_end" in text


def test_the_motion_bench_makes_its_real_size_model_in_bf16_on_the_device():
    """``motion_gen.bench --real`` builds the 5B-I2V architecture + branch straight in bf16 on its device."""
    from motion_gen.bench import real_size_model

    written, model = _cpu_writes(lambda: real_size_model("meta"))
    assert {(p.dtype, p.device.type) for p in model.parameters()} == {(torch.bfloat16, "meta")}
    assert _billions(model) == pytest.approx(5.570 + 1.728, abs=0.001) and written < 1e6


def test_gpu_step_runs_the_module_and_records_its_exit(tmp_path):
    """``sim2real.gpu_step`` runs a module in its own process and writes its exit status and wall time (no GPU:
    no peak), the estimate when asked for; an unknown module is one error line."""
    from data_tools.errors import DataError
    from sim2real import gpu_step

    out = tmp_path / "step.json"
    assert gpu_step.main(["--json", str(out), "--", "json.tool", "--help"]) == 0
    assert json.loads(out.read_text())["exit"] == 0
    assert gpu_step.main(["--json", str(out), "json.tool", str(tmp_path / "missing.json")]) == 2
    record = json.loads(out.read_text())
    assert record["exit"] == 2 and record["estimate_gib"] is None and record["wall_s"] >= 0
    with pytest.raises(DataError, match="no Python module 'no.such'"):
        gpu_step.main(["--json", str(out), "no.such"])


def test_peak_memory_spans_the_resets_of_the_code_it_measures(monkeypatch):
    """The benches reset the peak counter before their timed part; the step's peak is still the whole step's."""
    from sim2real.gpu_step import PeakMemory

    counter = {"peak": 0}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: counter["peak"])
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: counter.update(peak=0))
    with PeakMemory() as peak:
        counter["peak"] = 10 * 2**30            # building the model
        torch.cuda.reset_peak_memory_stats()    # the bench's own reset before timing
        counter["peak"] = 4 * 2**30             # the timed step
    assert peak.gib() == 10 and counter["peak"] == 4 * 2**30
    torch.cuda.reset_peak_memory_stats()        # the original function is back
    assert counter["peak"] == 0 and peak.gib() == 10


def test_auto_device_is_this_process_gpu(monkeypatch):
    """init_device "auto" builds on the process's own GPU: LOCAL_RANK's under torchrun (not every rank on GPU 0),
    else the current device; the CPU without CUDA."""
    from data_tools.runtime.random_init import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device("meta") == "meta"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 2)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert resolve_device("auto") == "cuda:2"
    monkeypatch.setenv("LOCAL_RANK", "5")
    assert resolve_device("auto") == "cuda:1"
