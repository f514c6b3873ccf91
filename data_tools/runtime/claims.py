"""Per-item claims, so that several workers (a duplicated SLURM task, a re-submitted array) never do one item twice.

A worker claims an output folder by creating ``<folder>/.claim`` exclusively (``O_CREAT | O_EXCL``), holding its
host, pid and start time. A claim is stale when its holder is gone: on the same host, when the pid no longer runs;
on another host, when the claim is older than ``stale_after`` seconds. A stale claim is taken over by renaming it
away first (a rename succeeds for one worker only), and the new holder removes the temporaries that the dead one
left (``.*.part*`` files written by ``data_tools.io.atomic.atomic_path``).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from typing import Iterator

logger = logging.getLogger(__name__)

CLAIM_FILE = ".claim"
DEFAULT_STALE_AFTER = 24 * 3600.0  # seconds; only for claims made on another host


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def read_claim_file(path: str) -> dict | None:
    """The claim in file ``path`` (``host``, ``pid``, ``time``), or None when absent or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_claim(folder: str) -> dict | None:
    """The claim on ``folder``, or None when unclaimed or unreadable."""
    return read_claim_file(os.path.join(folder, CLAIM_FILE))


def is_stale(claim: dict | None, stale_after: float = DEFAULT_STALE_AFTER) -> bool:
    """Whether a claim's holder is gone (see the module docstring). An unreadable claim (a worker killed while
    writing it) is stale."""
    if not claim or not isinstance(claim.get("pid"), int):
        return True
    if claim.get("host") == socket.gethostname():
        return not _pid_alive(claim["pid"])
    return time.time() - float(claim.get("time", 0)) > stale_after


def remove_temporaries(folder: str, stems=None) -> list[str]:
    """Delete the ``.*.part*`` files under ``folder`` (left by a killed writer), only those of the given file
    ``stems`` when given (``atomic_path`` names them ``.<stem>.<random>.part<suffix>``); returns what was removed."""
    removed = []
    prefixes = None if stems is None else tuple(f".{stem}." for stem in stems)
    for root, _, names in os.walk(folder):
        for name in names:
            if name.startswith(".") and ".part" in name and (prefixes is None or name.startswith(prefixes)):
                path = os.path.join(root, name)
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
                    removed.append(path)
    return removed


def _try_create(path: str) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}, f)
    return True


@contextlib.contextmanager
def claim(folder: str, stale_after: float = DEFAULT_STALE_AFTER) -> Iterator[bool]:
    """Claim ``folder`` for this process: yields True when it is ours (released on exit), False when another live
    worker holds it. Taking over a stale claim removes the dead holder's temporaries first."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, CLAIM_FILE)
    mine = _try_create(path)
    if not mine:
        held = read_claim(folder)
        if is_stale(held, stale_after):
            stale = f"{path}.stale.{socket.gethostname()}.{os.getpid()}"
            with contextlib.suppress(FileNotFoundError):
                os.rename(path, stale)  # one worker wins the rename; the others find the file gone
                moved = read_claim_file(stale)
                if moved != held and not is_stale(moved, stale_after):
                    # another worker took the claim over between our read and our rename: give it back
                    with contextlib.suppress(FileExistsError):
                        os.link(stale, path)
                else:
                    logger.info("%s: took over the stale claim of %s", folder, held)
                os.remove(stale)
            mine = _try_create(path)
        if mine:
            for temporary in remove_temporaries(folder):
                logger.info("removed a stale temporary %s", temporary)
    try:
        yield mine
    finally:
        if mine:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
