"""The data_tools tree keeps its one-way dependency direction: io <- maps <- pose <- datasets <- metrics; runtime needs io only."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1] / "data_tools"
STAGES = ("appearance_gen", "motion_gen", "sim2real")
# subpackage -> the data_tools subpackages it may import (besides itself and data_tools.errors)
ALLOWED = {
    "io": set(),
    "maps": {"io"},
    "pose": {"io", "maps"},
    "datasets": {"io", "maps", "pose"},
    "metrics": {"io", "maps", "pose", "datasets"},
    "runtime": {"io"},
}


def _imports(path: pathlib.Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_layout_dependency_direction():
    violations = []
    for sub, allowed in ALLOWED.items():
        for path in sorted((ROOT / sub).glob("*.py")):
            for module in _imports(path):
                top = module.split(".")[0]
                if top in STAGES:
                    violations.append(f"{path.name} imports stage {module}")
                if top == "data_tools" and module.count(".") >= 1:
                    target = module.split(".")[1]
                    if target not in allowed | {sub, "errors"}:
                        violations.append(f"{sub}/{path.name} imports {module}")
    assert not violations, violations


def test_no_flat_modules_left():
    flat = sorted(p.name for p in ROOT.glob("*.py"))
    assert flat == ["__init__.py", "errors.py"], flat


def test_shared_samples_dir_is_next_to_the_checkout(monkeypatch, tmp_path):
    from data_tools.io.cli import shared_samples_dir

    monkeypatch.delenv("PAM_SHARED_DIR", raising=False)
    expected = ROOT.parents[1] / "shared" / "samples" / "dexycb_val"
    assert shared_samples_dir() == (str(expected) if expected.is_dir() else None)
    (tmp_path / "samples" / "dexycb_val").mkdir(parents=True)
    monkeypatch.setenv("PAM_SHARED_DIR", str(tmp_path))
    assert shared_samples_dir() == str(tmp_path / "samples" / "dexycb_val")
