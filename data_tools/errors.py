"""Error type raised for bad user input (files, videos, configs)."""
from __future__ import annotations

import os


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
