"""Run a per-clip conversion over many clips: parallel, resumable, atomic, with a summary.

A converter supplies picklable ``ClipJob``s and a module-level function ``convert(job, staging_dir)`` that
writes the clip's files into ``staging_dir``. The runner

- skips a clip whose outputs all exist already (resume; ``overwrite=True`` redoes it);
- stages each clip in ``<root>/.staging/`` and moves its files into ``<root>/<clip>/`` only when the whole
  clip succeeded, so a clip folder never holds half a conversion (stale staging is cleared at start);
- turns any exception of one clip into a "failed" entry with its reason, never aborting the run;
- shows a tqdm progress bar, logs a final summary and writes it as JSON.
"""
from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, Iterable, Mapping, Sequence

from tqdm import tqdm

from data_tools.io.atomic import write_json
from data_tools.io.cli import positive_int, setup_logging
from data_tools.errors import DataError
from data_tools.maps.geometry_maps import DEPTH_COLORMAPS
from data_tools.maps.style import STYLES, get_style

logger = logging.getLogger(__name__)

STAGING_DIR = ".staging"
CONVERTED, SKIPPED, FAILED = "converted", "skipped", "failed"


@dataclasses.dataclass
class ClipJob:
    """One clip to convert: ``key`` is its folder relative to the output root, ``source`` where it comes from,
    ``params`` converter options (all picklable)."""

    key: str
    source: str
    params: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ClipResult:
    key: str
    status: str
    reason: str = ""
    seconds: float = 0.0


@dataclasses.dataclass
class Summary:
    """Outcome of a run: clip keys per status, and the reason of every failure."""

    converted: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0

    def add(self, result: ClipResult) -> None:
        if result.status == FAILED:
            self.failed[result.key] = result.reason
        else:
            getattr(self, result.status).append(result.key)

    @property
    def done(self) -> list[str]:
        """Clips whose outputs are complete (converted now or before), sorted."""
        return sorted(self.converted + self.skipped)

    def to_dict(self) -> dict:
        return {"num_converted": len(self.converted), "num_skipped": len(self.skipped),
                "num_failed": len(self.failed), "seconds": round(self.seconds, 2),
                "converted": sorted(self.converted), "skipped": sorted(self.skipped),
                "failed": [{"clip": k, "reason": v} for k, v in sorted(self.failed.items())]}

    def log(self, what: str = "clips") -> None:
        logger.info("%s: %d converted, %d skipped (already done), %d failed in %.1fs", what,
                    len(self.converted), len(self.skipped), len(self.failed), self.seconds)
        for key, reason in sorted(self.failed.items()):
            logger.warning("failed %s: %s", key, reason)


def clip_complete(clip_dir: str, outputs: Iterable[str]) -> bool:
    """Whether every output file of a clip exists."""
    return all(os.path.isfile(os.path.join(clip_dir, name)) for name in outputs)


def _commit(staging: str, clip_dir: str, last: str | None) -> None:
    """Move the staged files into ``clip_dir``; ``last`` (e.g. ``descriptions.json``) goes last."""
    os.makedirs(clip_dir, exist_ok=True)
    names = sorted(os.listdir(staging), key=lambda n: n == last)
    for name in names:
        os.replace(os.path.join(staging, name), os.path.join(clip_dir, name))


def _run_one(convert: Callable[[ClipJob, str], None], job: ClipJob, root: str, last: str | None) -> ClipResult:
    start = time.perf_counter()
    staging_root = os.path.join(root, STAGING_DIR)
    os.makedirs(staging_root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=job.key.replace("/", "__") + ".", dir=staging_root)
    try:
        convert(job, staging)
        _commit(staging, os.path.join(root, job.key), last)
        return ClipResult(job.key, CONVERTED, seconds=time.perf_counter() - start)
    except DataError as exc:
        return ClipResult(job.key, FAILED, str(exc), time.perf_counter() - start)
    except Exception as exc:  # one bad clip must not stop the run; the reason goes to the summary
        logger.debug("clip %s failed:\n%s", job.key, traceback.format_exc())
        return ClipResult(job.key, FAILED, f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _init_worker(log_level: int) -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already
    setup_logging(level=log_level)  # worker processes start without the parent's logging set-up


def run_clips(
    jobs: Sequence[ClipJob],
    convert: Callable[[ClipJob, str], None],
    root: str | os.PathLike,
    outputs: Sequence[str],
    workers: int = 1,
    overwrite: bool = False,
    failed: dict[str, str] | None = None,
    summary_path: str | os.PathLike | None = None,
    desc: str = "clips",
) -> Summary:
    """Convert ``jobs`` into ``root/<job.key>/`` with ``convert`` (a module-level function, picklable).

    ``outputs``: the files that make a clip complete (the last one is committed last); ``workers``: processes
    (0 or 1 runs in this process); ``failed``: problems found before conversion (e.g. during discovery), reported
    with the rest. Returns the ``Summary`` and writes it to ``summary_path`` when given.
    """
    root = os.fspath(root)
    os.makedirs(root, exist_ok=True)
    shutil.rmtree(os.path.join(root, STAGING_DIR), ignore_errors=True)  # leftovers of an interrupted run
    start = time.perf_counter()
    summary = Summary()
    for key, reason in (failed or {}).items():
        summary.add(ClipResult(key, FAILED, reason))
    todo = []
    for job in jobs:
        if not overwrite and clip_complete(os.path.join(root, job.key), outputs):
            summary.add(ClipResult(job.key, SKIPPED))
        else:
            todo.append(job)
    last = outputs[-1] if outputs else None
    logger.info("%s: %d to convert, %d already done, %d rejected before conversion", desc, len(todo),
                len(summary.skipped), len(summary.failed))
    with tqdm(total=len(todo), desc=desc, unit="clip", dynamic_ncols=True) as bar:
        if workers <= 1 or len(todo) <= 1:
            for job in todo:
                summary.add(_run_one(convert, job, root, last))
                bar.update(1)
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=context,
                                     initializer=_init_worker,
                                     initargs=(logging.getLogger().level,)) as pool:
                futures = {pool.submit(_run_one, convert, job, root, last): job.key for job in todo}
                for future in as_completed(futures):
                    try:
                        summary.add(future.result())
                    except Exception as exc:  # the worker process itself died (e.g. out of memory)
                        summary.add(ClipResult(futures[future], FAILED, f"worker crashed: {type(exc).__name__}: {exc}"))
                    bar.update(1)
    shutil.rmtree(os.path.join(root, STAGING_DIR), ignore_errors=True)
    summary.seconds = time.perf_counter() - start
    summary.log(desc)
    if summary_path is not None:
        write_json(summary_path, summary.to_dict())
    return summary



def convert_dataset(jobs: Sequence[ClipJob], convert: Callable[[ClipJob, str], None], out: str | os.PathLike,
                    outputs: Sequence[str], splits: Mapping[str, Sequence[str]], workers: int = 1,
                    overwrite: bool = False, failed: dict[str, str] | None = None, desc: str = "clips") -> dict:
    """``run_clips`` into ``out`` (summary in ``out/conversion_summary.json``), then the dataset index.

    ``splits``: the splits of every known clip key (e.g. ``("val", "test")``), also of clips not in ``jobs`` (a
    filtered run); every clip whose outputs are complete on disk is listed, sorted, in its splits' filelists and
    in ``prompts.jsonl``. Returns the summary dict with ``"splits"`` (clips per split).
    """
    from data_tools.datasets.index import SPLITS, write_index

    out = os.fspath(out)
    summary = run_clips(jobs, convert, out, outputs, workers=workers, overwrite=overwrite, failed=failed,
                        summary_path=os.path.join(out, "conversion_summary.json"), desc=desc)
    names = list(SPLITS) + sorted({s for key_splits in splits.values() for s in key_splits} - set(SPLITS))
    done = sorted(k for k in splits if clip_complete(os.path.join(out, k), outputs))
    counts = write_index(out, {name: [k for k in done if name in splits[k]] for name in names})
    logger.info("%s: clips per split %s written to %s/filelists", desc, counts, out)
    return {**summary.to_dict(), "splits": counts}

# ------------------------------------------------------------------ shared CLI plumbing of the converters
def parse_size(text: str) -> tuple[int, int]:
    """``"480x720"`` -> ``(480, 720)`` (height x width)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise DataError(None, f"size must look like HEIGHTxWIDTH (e.g. 480x720), got {text!r}") from None
    if h <= 0 or w <= 0:
        raise DataError(None, f"size must be positive, got {text!r}")
    return h, w


def add_converter_args(parser, root_help: str, depth_help: str, default_fps: float = 15) -> None:
    """Options every converter shares: input/output roots, external depth, output policy, parallelism, resume."""
    parser.add_argument("--root", required=True, help=root_help)
    parser.add_argument("--out", required=True, help="output dataset root")
    parser.add_argument("--depth-dir", default=None,
                        help=f"import video depth (e.g. DepthCrafter outputs) from this folder instead of {depth_help}")
    parser.add_argument("--depth-kind", choices=("disparity", "depth"), default="disparity",
                        help="what --depth-dir holds: disparity-like (large = near, DepthCrafter) or depth")
    parser.add_argument("--style", choices=sorted(STYLES), default="engine",
                        help="condition style (data_tools.maps.style): engine (default) or pam_release (the maps "
                             "as the PAM authors' released models saw them: inferno depth)")
    parser.add_argument("--depth-colormap", choices=DEPTH_COLORMAPS, default=None,
                        help="colours of depth.mp4 (near bright), overriding the style's: gray (engine, as the "
                             "renderer's sim depth) or inferno (pam_release: the reference's real DexYCB depth)")
    parser.add_argument("--num-frames", type=positive_int, default=None,
                        help="resample every clip to this many frames (uniform in time; default: keep native)")
    parser.add_argument("--size", type=parse_size, default=None, metavar="HxW",
                        help="resize every clip to HEIGHTxWIDTH, e.g. 480x720 (default: keep native)")
    parser.add_argument("--resize-mode", choices=("crop", "resize", "pad"), default="crop",
                        help="how --size changes the aspect ratio (default: crop = cover then centre-crop)")
    parser.add_argument("--fps", type=float, default=default_fps, help=f"fps of the written mp4s (default {default_fps:g})")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                        help="parallel processes (default: cores - 1; 1 runs in-process)")
    parser.add_argument("--overwrite", action="store_true", help="reconvert clips whose outputs already exist")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (tracebacks of failed clips)")


# Per-clip output options every converter accepts (keyword arguments and CLI flags), with their defaults.
CLIP_OPTIONS = {"num_frames": None, "size": None, "resize_mode": "crop", "fps": 15.0, "depth_dir": None,
                "depth_kind": "disparity", "style": "engine", "depth_colormap": None}


def clip_options(args=None, **overrides) -> dict:
    """``CLIP_OPTIONS`` filled from parsed CLI ``args`` and/or keyword ``overrides`` (unknown keys raise)."""
    unknown = sorted(set(overrides) - set(CLIP_OPTIONS))
    if unknown:
        raise TypeError(f"unknown clip option(s) {unknown}; known: {sorted(CLIP_OPTIONS)}")
    options = {k: getattr(args, k, v) for k, v in CLIP_OPTIONS.items()} if args is not None else dict(CLIP_OPTIONS)
    options.update(overrides)
    options["depth_colormap"] = options["depth_colormap"] or get_style(options["style"]).depth_colormap
    return options
