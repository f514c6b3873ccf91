"""The repository speaks of the project alone: no absolute path of a development machine in any tracked file."""
from __future__ import annotations

import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
# home folders and workspace roots of a machine; /tmp scratch examples and URLs are fine
MACHINE_PATH = re.compile(r"(?<![\w.:/])/(?:work|root|home|Users|mnt|scratch)/[\w.-]+")


def tracked_text_files() -> list[pathlib.Path]:
    """Every tracked file that is text (no NUL byte in its first 8 KiB)."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split("\0")
    files = []
    for name in filter(None, names):
        path = ROOT / name
        if path.is_file() and b"\0" not in path.read_bytes()[:8192]:
            files.append(path)
    return files


def test_no_machine_paths_in_tracked_files():
    files = tracked_text_files()
    assert len(files) > 100 and any(p.name == "train.sbatch" for p in files) and any(p.name == "run" for p in files)
    hits = [f"{p.relative_to(ROOT)}:{n}: {m.group(0)}" for p in files if p.is_file()
            for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
            for m in [MACHINE_PATH.search(line)] if m and p.name != "test_repository_text.py"]
    assert not hits, hits


def test_the_pattern_finds_what_it_should():
    assert MACHINE_PATH.search("export VIRTUAL_ENV=/work/wt/venv") and MACHINE_PATH.search("cd /home/alice/pam")
    assert not MACHINE_PATH.search("see https://example.org/home/page") and not MACHINE_PATH.search("--out /tmp/x")
