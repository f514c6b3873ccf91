"""scripts/_setup.sh: an activated virtualenv is used as it is (no .venv, nothing installed, one message listing
what is missing), and parallel first runs of the managed venv install once, one after the other."""
import os
import site
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _checkout(tmp_path: Path) -> Path:
    """A checkout without .venv: the scripts and pyproject copied, the packages and configs linked."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    for f in ("_setup.sh", "_help.sh", "check_node.sh", "convert_ckpt.sh"):
        (root / "scripts" / f).write_text((ROOT / "scripts" / f).read_text())
    (root / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    for name in ("data_tools", "motion_gen", "appearance_gen", "sim2real", "configs"):
        (root / name).symlink_to(ROOT / name)
    return root


def _virtualenv(path: Path, with_packages: bool) -> Path:
    """A real virtualenv (no pip); ``with_packages``: it sees the test environment's packages through a .pth."""
    venv.EnvBuilder(with_pip=False).create(path)
    if with_packages:
        purelib = next((path / "lib").glob("python3*/site-packages"))
        (purelib / "test_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return path


def _activated(env_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PAM_VENV", "CONDA_PREFIX", "PYTHONPATH")}
    env.update(VIRTUAL_ENV=str(env_dir), PATH=f"{env_dir}/bin:{os.environ['PATH']}")
    return env


def _listing(env_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(env_dir)) for p in env_dir.rglob("*") if "__pycache__" not in p.parts)


def test_scripts_run_inside_an_activated_virtualenv(tmp_path):
    root = _checkout(tmp_path)
    env_dir = _virtualenv(tmp_path / "env", with_packages=True)
    before = _listing(env_dir)
    out = subprocess.run(["bash", "scripts/check_node.sh"], cwd=root, env=_activated(env_dir), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"python {sys.version.split()[0]}" in out.stdout and "[ok] Python requirements: all met" in out.stdout
    assert "[setup]" not in out.stdout + out.stderr  # nothing created, nothing installed
    assert not (root / ".venv").exists() and _listing(env_dir) == before


def test_an_incomplete_virtualenv_gets_one_message_and_no_install(tmp_path):
    root = _checkout(tmp_path)
    env_dir = _virtualenv(tmp_path / "bare", with_packages=False)
    before = _listing(env_dir)
    out = subprocess.run(["bash", "scripts/convert_ckpt.sh", "--help"], cwd=root, env=_activated(env_dir),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"[setup] the active Python environment ({env_dir}) lacks: torch (not installed)")
    assert "deepspeed (not installed)" in lines[0] and "PAM_INSTALL=1" in lines[0]  # the gpu extra is checked too
    assert not (root / ".venv").exists() and _listing(env_dir) == before


FAKE_PYTHON = """#!/usr/bin/env bash
# stands in for python3 -m venv DIR, and for DIR/bin/python -m pip ... (logged, slow enough to race)
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; echo "export PATH=$3/bin:\\$PATH" > "$3/bin/activate"
  echo "venv $$" >> "$PAM_TEST_LOG"; exit 0
fi
if [ "$1 $2" = "-m pip" ]; then
  echo "start $$ ${*: -1}" >> "$PAM_TEST_LOG"; sleep 0.5; echo "end $$" >> "$PAM_TEST_LOG"
fi
"""


def _fake_managed_venv(tmp_path: Path) -> tuple[dict, Path]:
    """An environment in which _setup.sh manages a venv made by FAKE_PYTHON, and the log its pip calls go to."""
    fake = tmp_path / "python3"
    fake.write_text(textwrap.dedent(FAKE_PYTHON))
    fake.chmod(0o755)
    log = tmp_path / "log"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "PAM_INSTALL", "PAM_EXTRA")}
    env.update(PAM_VENV=str(tmp_path / "venv"), PYTHON=str(fake), PAM_TEST_LOG=str(log), PAM_TORCH_VERSION="2.13.0")
    return env, log


def test_parallel_first_runs_install_once(tmp_path):
    env, log = _fake_managed_venv(tmp_path)
    cmd = ["bash", "-c", f"source {ROOT}/scripts/_setup.sh && echo ready"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(3)]
    assert all(p.communicate(timeout=60)[0].strip().endswith("ready") for p in procs)
    entries = [line.split() for line in log.read_text().splitlines()]
    assert [e[0] for e in entries].count("venv") == 1
    pip = [e for e in entries if e[0] != "venv"]
    # one install (pip upgrade, torch, the project), each pip call finished before the next started
    assert [e[0] for e in pip] == ["start", "end"] * 3
    assert [e[2] for e in pip if e[0] == "start"] == ["pip", "torch==2.13.0", "."]


def test_environment_yaml_matches_pyproject():
    """The conda recipe installs the base and gpu requirements as pyproject.toml states them, torch at 2.10.0
    (the newest CUDA 12 build), which lies in pyproject's torch range."""
    import yaml
    from packaging.requirements import Requirement

    from data_tools.runtime.environment import requirements

    recipe = yaml.safe_load((ROOT / "environment.yaml").read_text())
    pip = next(d["pip"] for d in recipe["dependencies"] if isinstance(d, dict))
    assert "torch==2.10.0" in pip
    torch_line = next(r for r in requirements() if r.startswith("torch"))
    torch_range = Requirement(torch_line).specifier
    assert torch_range.contains("2.10.0") and torch_range.contains("2.13.0") and not torch_range.contains("2.9.1")
    assert set(requirements(["gpu"])) - {torch_line} <= set(pip)
    assert set(pip) - {"torch==2.10.0"} <= set(requirements(["gpu", "dev"]))


def test_an_install_with_more_extras_serves_later_scripts(tmp_path):
    """scripts/gpu_checks.sh installs the gpu extra once; a later script asking for the base (or gpu) requirements
    finds that install and runs no pip; one asking for another extra (dev) installs."""
    env, log = _fake_managed_venv(tmp_path)

    def installs(extra: str) -> int:
        before = log.read_text().count("start") if log.exists() else 0
        out = subprocess.run(["bash", "-c", f"source {ROOT}/scripts/_setup.sh '{extra}' && echo ready"], env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.stdout.strip().endswith("ready"), out.stderr
        return log.read_text().count("start") - before

    assert installs("gpu") == 3  # pip, torch, the project
    assert installs("") == 0 and installs("gpu") == 0
    assert installs("dev") == 3
    assert installs("dev,gpu") == 3 and installs("gpu,dev") == 0
