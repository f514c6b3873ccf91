"""Error type raised for bad user input (files, videos, configs)."""
from __future__ import annotations

import os
from typing import Mapping


class DataError(ValueError):
    """Bad input data. The message always names the offending file (when there is one) and the problem."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


def require_file(path: str | os.PathLike, what: str = "file") -> str:
    """Return ``path`` as a string, or raise DataError when it is not an existing file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(path, f"{what} does not exist")
    if not os.path.isfile(path):
        raise DataError(path, f"{what} is not a regular file")
    return path


def require_paths(paths: Mapping[str, str | os.PathLike | None], what: str = "this run") -> None:
    """Raise one DataError listing every ``{config key: path}`` that does not exist (None entries are skipped).

    Call it before any expensive step, so that a run fails at start-up rather than at its first use of a path.
    """
    missing = [f"{key}={os.fspath(path)}" for key, path in paths.items() if path and not os.path.exists(path)]
    if missing:
        raise DataError(None, f"{what} needs {len(missing)} path(s) that do not exist: {', '.join(missing)}")
