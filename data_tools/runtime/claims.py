"""Per-item claims, so that several workers (a duplicated SLURM task, a re-submitted array) never do one item twice.

A worker claims an output folder by creating ``<folder>/.claim`` exclusively and complete (written under a unique
name, then hard-linked into place), holding its host, pid, start time and a random token; while it works, a
heartbeat thread touches the file every ``HEARTBEAT_S`` seconds. A claim is stale when its holder is gone: on
the same host, when the pid no longer runs; on any host, when the file has not been touched for ``stale_after``
seconds (a killed job, a failed node). A stale claim is taken over by renaming it away first (a rename succeeds for one worker only), and the new holder removes
the temporaries the dead one left (``.*.part*`` files written by ``data_tools.io.atomic.atomic_path``). A claim is
released only by the holder of its token.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Iterator

logger = logging.getLogger(__name__)

CLAIM_FILE = ".claim"
HEARTBEAT_S = 60.0
DEFAULT_STALE_AFTER = 10 * HEARTBEAT_S  # seconds without a heartbeat


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def read_claim_file(path: str) -> dict | None:
    """The claim in file ``path`` (``host``, ``pid``, ``time``, ``token``, and ``touched``: its modification
    time), or None when absent or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            claim_data = json.load(f)
        claim_data["touched"] = os.path.getmtime(path)
        return claim_data
    except (OSError, ValueError, TypeError):
        return None


def read_claim(folder: str) -> dict | None:
    """The claim on ``folder``, or None when unclaimed or unreadable."""
    return read_claim_file(os.path.join(folder, CLAIM_FILE))


def is_stale(claim_data: dict | None, stale_after: float = DEFAULT_STALE_AFTER) -> bool:
    """Whether a claim's holder is gone (see the module docstring). An unreadable claim (a worker killed while
    writing it) is stale."""
    if not claim_data or not isinstance(claim_data.get("pid"), int):
        return True
    if claim_data.get("host") == socket.gethostname() and not _pid_alive(claim_data["pid"]):
        return True
    touched = claim_data.get("touched", claim_data.get("time", 0))
    return time.time() - float(touched) > stale_after


def remove_temporaries(folder: str, stems=None, older_than_s: float = 0.0) -> list[str]:
    """Delete the ``.*.part*`` files under ``folder`` (left by a killed writer), only those of the given file
    ``stems`` when given (``atomic_path`` names them ``.<stem>.<random>.part<suffix>``) and only those not written
    to for ``older_than_s`` seconds; returns what was removed."""
    removed = []
    prefixes = None if stems is None else tuple(f".{stem}." for stem in stems)
    now = time.time()
    for root, _, names in os.walk(folder):
        for name in names:
            if name.startswith(".") and ".part" in name and (prefixes is None or name.startswith(prefixes)):
                path = os.path.join(root, name)
                with contextlib.suppress(FileNotFoundError):
                    if now - os.path.getmtime(path) >= older_than_s:
                        os.remove(path)
                        removed.append(path)
    return removed


def _try_create(path: str, token: str) -> bool:
    """Create the claim file with its content in one step: written under a unique name, then hard-linked to
    ``path`` (fails when it exists). Created empty and filled after, another worker could read it empty in
    between, take it for a dead worker's and take it over too."""
    tmp = f"{path}.new.{token}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time(), "token": token}, f)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.remove(tmp)


def _take_over(folder: str, path: str, held: dict | None, stale_after: float) -> None:
    """Move a stale claim out of the way; give it back when another worker took it over meanwhile."""
    stale = f"{path}.stale.{uuid.uuid4().hex}"
    try:
        os.rename(path, stale)  # one worker wins the rename; the others find the file gone
    except FileNotFoundError:
        return
    moved = read_claim_file(stale)
    if moved and not is_stale(moved, stale_after) and moved.get("token") != (held or {}).get("token"):
        with contextlib.suppress(OSError):  # a live claim renamed by mistake: put it back
            os.link(stale, path)
    else:
        logger.info("%s: took over the stale claim of %s", folder, held)
    with contextlib.suppress(FileNotFoundError):
        os.remove(stale)


def _heartbeat(path: str, token: str, stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        current = read_claim_file(path)
        if not current or current.get("token") != token:
            return
        with contextlib.suppress(OSError):
            os.utime(path)


@contextlib.contextmanager
def claim(folder: str, stale_after: float = DEFAULT_STALE_AFTER, heartbeat_s: float = HEARTBEAT_S) -> Iterator[bool]:
    """Claim ``folder`` for this process: yields True when it is ours (kept fresh by a heartbeat, released on exit),
    False when another live worker holds it. Taking over a stale claim removes the dead holder's temporaries."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, CLAIM_FILE)
    token = uuid.uuid4().hex
    mine = _try_create(path, token)
    if not mine:
        held = read_claim(folder)
        if is_stale(held, stale_after):
            _take_over(folder, path, held, stale_after)
            mine = _try_create(path, token)
        if mine:
            for temporary in remove_temporaries(folder):
                logger.info("removed a stale temporary %s", temporary)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(path, token, stop, heartbeat_s), daemon=True)
    if mine:
        beat.start()
    try:
        yield mine
    finally:
        if mine:
            stop.set()
            beat.join()
            current = read_claim_file(path)
            if current and current.get("token") == token:  # never remove another worker's claim
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)


@contextlib.contextmanager
def exclusive(lock_path: str) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (flock; created if needed) for one-at-a-time steps between workers,
    e.g. one merge of a dataset folder, one conversion of shared weights. Where the file system has no locks
    (some network mounts), it warns and runs unlocked."""
    import fcntl

    os.makedirs(os.path.dirname(os.path.abspath(lock_path)), exist_ok=True)
    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:
            logger.warning("%s: no file locks on this file system; going on without one", lock_path)
        yield
