"""Small helpers shared by every command-line entry point."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import traceback
from typing import Callable, Sequence

from data_tools.errors import DataError

VERBOSE_FLAGS = ("-v", "--verbose")


def setup_logging(verbose: bool = False, level: int | None = None) -> None:
    """Configure root logging once: timestamps, level names, INFO (DEBUG when verbose, or ``level``) on stderr."""
    if level is None:
        level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def shared_samples_dir() -> str | None:
    """The DexYCB sample folder next to the checkout (``../shared/samples/dexycb_val``), or None when absent.

    ``PAM_SHARED_DIR`` overrides the location of ``shared/``.
    """
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    shared = os.environ.get("PAM_SHARED_DIR", os.path.join(os.path.dirname(checkout), "shared"))
    path = os.path.join(shared, "samples", "dexycb_val")
    return path if os.path.isdir(path) else None


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (0 and negatives are refused, never read as "the default")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def run_cli(main: Callable[[Sequence[str]], int | None], argv: Sequence[str] | None = None) -> int:
    """Exit status of a command's ``main(argv)``: its return value (None: 0), or 2 after printing one line
    ``error: <file>: <problem>`` on stderr when it raises a ``DataError`` (bad input); under ``-v``/``--verbose``
    the traceback comes first. Every ``python -m`` entry point ends with ``raise SystemExit(run_cli(main))``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (SLURM's time limit, scancel) unwinds like an exception, so claims and temporaries are cleaned up
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        status = main(argv)
    except (DataError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
        # file-system refusals (an output path that is a file, a read-only folder) are bad input too
        if any(flag in argv for flag in VERBOSE_FLAGS):
            traceback.print_exc()
        text = str(exc) if isinstance(exc, DataError) else f"{exc.filename}: {exc.strerror}"
        print("error: " + " ".join(text.split("\n")), file=sys.stderr)  # one line, always
        return 2
    return 0 if status is None else int(status)
