"""Filelists (one relative path per line, one file per column) and prompt jsonl files."""
from __future__ import annotations

import json
import os
from typing import Iterable, Mapping

from data_tools.io.atomic import write_text
from data_tools.errors import DataError, require_file


def read_filelist(path: str | os.PathLike) -> list[str]:
    """Read a filelist: one entry per line, surrounding white space stripped, blank lines skipped."""
    path = require_file(path, "filelist")
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def write_filelist(path: str | os.PathLike, entries: Iterable[str]) -> None:
    """Write a filelist atomically, one entry per line."""
    entries = list(entries)
    for i, entry in enumerate(entries):
        if not entry or "\n" in entry:
            raise DataError(path, f"entry {i + 1} is empty or contains a newline: {entry!r}")
    write_text(path, "".join(f"{e}\n" for e in entries))


def read_prompts_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a prompt jsonl file: one JSON object per line with at least ``video`` and ``prompt`` keys."""
    path = require_file(path, "prompt file")
    records = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(path, f"line {lineno} is not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict) or not {"video", "prompt"} <= set(record):
                raise DataError(path, f"line {lineno} must be an object with 'video' and 'prompt' keys")
            records.append(record)
    return records


def write_prompts_jsonl(path: str | os.PathLike, records: Iterable[Mapping]) -> None:
    """Write prompt records (dicts with ``video`` and ``prompt``) as jsonl, atomically."""
    lines = []
    for i, record in enumerate(records):
        if not {"video", "prompt"} <= set(record):
            raise DataError(path, f"record {i + 1} lacks 'video' or 'prompt': {dict(record)}")
        lines.append(json.dumps(dict(record), ensure_ascii=False) + "\n")
    write_text(path, "".join(lines))


def read_columns(columns: Mapping[str, str | os.PathLike], root: str | os.PathLike | None = None,
                 check_exists: bool = True) -> dict[str, list[str]]:
    """Read several column filelists and validate them together.

    All columns must have the same number of lines and (with ``check_exists``) every entry must exist
    relative to ``root`` (default: the filelist's folder). Errors name the filelist and the first bad line.
    """
    data = {name: read_filelist(path) for name, path in columns.items()}
    lengths = {name: len(entries) for name, entries in data.items()}
    if len(set(lengths.values())) > 1:
        ref_name = next(iter(lengths))
        for name, n in lengths.items():
            if n != lengths[ref_name]:
                raise DataError(columns[name], f"column '{name}' has {n} lines but column '{ref_name}' "
                                               f"({columns[ref_name]}) has {lengths[ref_name]}")
    if check_exists:
        for name, entries in data.items():
            base = os.fspath(root) if root is not None else os.path.dirname(os.path.abspath(columns[name]))
            for lineno, entry in enumerate(entries, start=1):
                full = entry if os.path.isabs(entry) else os.path.join(base, entry)
                if not os.path.exists(full):
                    raise DataError(columns[name], f"line {lineno}: '{entry}' does not exist (looked for {full})")
    return data
