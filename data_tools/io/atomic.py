"""Atomic file writes: write to a temporary sibling, then rename over the target."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Iterator

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path`` (same suffix); on success it replaces ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base, suffix = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".part{suffix}", dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the final file normal permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def umask_permissions(path: str | os.PathLike) -> None:
    """Give every ``.safetensors`` file at or under ``path`` the mode an ordinary new file gets (``0o666 & ~umask``).

    safetensors >= 0.8 writes through a temporary file and leaves 0600 (safetensors/safetensors#782), so models
    saved on a shared cluster folder would be readable by their owner only; call this after saving."""
    path = os.fspath(path)
    files = [path] if os.path.isfile(path) else [os.path.join(root, name) for root, _, names in os.walk(path)
                                                for name in names]
    for file in files:
        if file.endswith(".safetensors") and not os.path.islink(file):
            os.chmod(file, 0o666 & ~_UMASK)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write a text file."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def write_json(path: str | os.PathLike, obj, indent: int = 2) -> None:
    """Atomically write a JSON file."""
    write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def write_label_npz(path: str | os.PathLike, arrays: dict) -> str:
    """Atomically write a label ``.npz``, refusing any non-finite value (a label file with NaN or inf would poison
    every model trained or scored on it). The refusal names the array and its first bad frame."""
    import numpy as np

    from data_tools.errors import DataError

    path = os.fspath(path)
    for key, value in arrays.items():
        value = np.asarray(value)
        if value.dtype.kind in "fc":
            bad = ~np.isfinite(value)
            if bad.any():
                frame = int(np.argwhere(bad)[0][0]) if value.ndim else 0
                raise DataError(path, f"refusing to write non-finite values in '{key}' (first at index {frame})")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return path
