"""Small helpers shared by every command-line entry point."""
from __future__ import annotations

import logging
import os


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
