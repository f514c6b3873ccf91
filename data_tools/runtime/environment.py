"""Does the active Python environment hold what the project needs? (standard library only: it runs before anything
else is installed). The requirements are read from ``pyproject.toml`` (base dependencies plus the asked extras).

    python -m data_tools.runtime.environment --extras gpu,dev    # exit 1 with one line listing what is missing
"""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import sys
from typing import Iterable, Sequence

PYPROJECT = os.path.join(os.path.dirname(__file__), "..", "..", "pyproject.toml")


def _load_toml(path: str) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            tomllib = None
    with open(path, "rb") as f:
        text = f.read()
    if tomllib is not None:
        return tomllib.loads(text.decode())
    # minimal fallback: the project's dependency arrays are lists of double-quoted strings
    data = {"project": {"dependencies": [], "optional-dependencies": {}}}
    body = text.decode()
    deps = re.search(r"^dependencies\s*=\s*\[(.*?)\]", body, re.S | re.M)
    if deps:
        data["project"]["dependencies"] = re.findall(r'"([^"]+)"', deps.group(1))
    extras = re.search(r"^\[project\.optional-dependencies\](.*?)(^\[|\Z)", body, re.S | re.M)
    for name, items in re.findall(r"^(\w+)\s*=\s*\[(.*?)\]", extras.group(1) if extras else "", re.S | re.M):
        data["project"]["optional-dependencies"][name] = re.findall(r'"([^"]+)"', items)
    return data


def requirements(extras: Iterable[str] = (), pyproject: str = PYPROJECT) -> list[str]:
    """Requirement strings of the base dependencies plus ``extras`` (unknown extras are an error)."""
    project = _load_toml(pyproject)["project"]
    reqs = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise ValueError(f"unknown extra {extra!r} (pyproject.toml has {sorted(optional)})")
        reqs += [r for r in optional[extra] if r not in reqs]
    return reqs


def _requirement_class():
    """``packaging``'s Requirement (or pip's copy of it); None in a bare environment (then names only)."""
    try:
        from packaging.requirements import Requirement
    except ModuleNotFoundError:
        try:
            from pip._vendor.packaging.requirements import Requirement
        except ModuleNotFoundError:
            return None
    return Requirement


def problems(reqs: Sequence[str]) -> list[str]:
    """One entry per unmet requirement: ``"name (not installed)"`` or ``"name X (need SPEC)"``."""
    Requirement = _requirement_class()
    found = []
    for text in reqs:
        req = Requirement(text) if Requirement else None
        name = req.name if req else re.split(r"[\s<>=!~;\[]", text, 1)[0]
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
            continue
        # local build tags (2.10.0+cu128) satisfy the plain version they carry
        if req and req.specifier and not req.specifier.contains(version.split("+")[0], prereleases=True):
            found.append(f"{req.name} {version} (need {req.specifier})")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extras", default="", help="comma-separated extras of pyproject.toml, e.g. gpu,dev")
    parser.add_argument("--also", action="append", default=[], metavar="REQUIREMENT",
                        help="a requirement outside pyproject.toml (e.g. mediapipe, installed with --no-deps)")
    parser.add_argument("--pyproject", default=PYPROJECT)
    args = parser.parse_args(argv)
    extras = [e for e in args.extras.split(",") if e]
    missing = problems(requirements(extras, args.pyproject) + args.also)
    if missing:
        target = ".[" + ",".join(extras) + "]" if extras else "."
        print(f"[setup] the active Python environment ({sys.prefix}) lacks: {'; '.join(missing)}. Install them "
              f"(pip install -e '{target}'), or rerun with PAM_INSTALL=1 to install them there, or with "
              f"PAM_VENV=.venv for a separate virtual environment.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli  # standard library only, like this module

    raise SystemExit(run_cli(main))
