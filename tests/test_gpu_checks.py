"""scripts/gpu_checks.sh (run on a lent GPU machine, not here): its random real-size configs build the released
architectures at their real sizes (checked on the meta device), and the script parses."""
import subprocess
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
    appearance = load_appearance_config(str(ROOT / "configs/appearance/random_real_size.yaml")).model
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
    assert out.returncode == 0 and "bench_motion.sh --real" in out.stdout and "49x480x720" in out.stdout


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
