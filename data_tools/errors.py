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


def read_json_file(path: str | os.PathLike, what: str = "JSON file"):
    """The parsed content of a JSON file; a missing, non-UTF-8 or malformed file raises DataError naming it."""
    import json

    path = require_file(path, what)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except UnicodeDecodeError as exc:
        raise DataError(path, f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise DataError(path, f"{what} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") \
            from None


def require_output_dir(path: str | os.PathLike, what: str = "output folder") -> str:
    """Return ``path`` once it is (or can become) a writable folder; raise DataError otherwise. Nothing is
    created: call it before any expensive step, so a bad ``--out`` costs nothing."""
    path = os.fspath(path)
    probe = path
    while not os.path.exists(probe):  # the nearest existing ancestor decides
        parent = os.path.dirname(os.path.abspath(probe))
        if parent == os.path.abspath(probe):
            break
        probe = parent
    if not os.path.isdir(probe):
        where = "" if probe == path else f" ({probe} is a file)"
        raise DataError(path, f"{what} cannot be created: the path is a file{where}" if probe == path
                        else f"{what} cannot be created{where}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise DataError(path, f"{what} is not writable" if probe == path else
                        f"{what} cannot be created: {probe} is not writable")
    return path


def require_paths(paths: Mapping[str, str | os.PathLike | None], what: str = "this run") -> None:
    """Raise one DataError listing every ``{config key: path}`` that does not exist (None entries are skipped).

    Call it before any expensive step, so that a run fails at start-up rather than at its first use of a path.
    """
    missing = [f"{key}={os.fspath(path)}" for key, path in paths.items() if path and not os.path.exists(path)]
    if missing:
        raise DataError(None, f"{what} needs {len(missing)} path(s) that do not exist: {', '.join(missing)}")
