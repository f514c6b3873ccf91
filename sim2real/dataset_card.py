"""The dataset card: ``DIR/card.md`` and its plots in ``DIR/card/`` (rewritten by every ``sim2real.dataset merge``).

Plots: counts per object, hand side and viewpoint (accepted / rejected stacked); histograms of the QC scores with
the thresholds drawn; the trajectory checks (penetration, fingers in contact, reasons draws were redrawn);
mosaics of accepted and rejected first frames. Text: the counts per split, the time per stage per video, the
config and the package versions.
"""
from __future__ import annotations

import collections
import datetime
import importlib.metadata
import os
import platform

import numpy as np
import yaml

from data_tools.io.atomic import write_text
from data_tools.io.contact_sheet import make_mosaic
from data_tools.io.video_io import read_image, write_image
from data_tools.metrics.quality import SCORES, THRESHOLDS

CARD_DIR = "card"
STAGES = ("scenario_s", "render_s", "appearance_s", "motion_s", "write_s", "qc_s", "total_s")
PACKAGES = ("torch", "diffusers", "transformers", "accelerate", "numpy", "mediapipe")
STATUS_COLORS = {"accepted": "tab:green", "rejected": "tab:red", "pending": "tab:gray"}


def _status(entry: dict) -> str:
    return "pending" if entry.get("qc") is None else ("accepted" if entry.get("accepted") else "rejected")


def _figure(columns: int):
    import logging

    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, columns, figsize=(4.2 * columns, 3.4), squeeze=False)
    return plt, fig, axes[0]


def _save(plt, fig, out: str, name: str) -> str:
    fig.tight_layout()
    path = os.path.join(out, CARD_DIR, name)
    tmp = path + ".part.png"
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)
    return f"{CARD_DIR}/{name}"


def _stacked_bars(ax, entries: list[dict], key, title: str) -> None:
    values = sorted({key(e) for e in entries}, key=str)
    bottom = np.zeros(len(values))
    for status, color in STATUS_COLORS.items():
        counts = np.array([sum(1 for e in entries if key(e) == v and _status(e) == status) for v in values])
        if counts.any():
            ax.bar([str(v) for v in values], counts, bottom=bottom, color=color, label=status)
            bottom += counts
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax.legend(fontsize=7)


def _viewpoint(entry: dict) -> str:
    """Camera azimuth around the object (45-degree sectors) and elevation (low below 30 degrees)."""
    s = entry["scenario"]["scenario"]
    azimuth = (s["approach_deg"] + s["camera_azimuth_deg"]) % 360
    return f"{int(azimuth // 45) * 45}°/{'low' if s['camera_elevation_deg'] < 30 else 'high'}"


def plot_counts(out: str, entries: list[dict]) -> str:
    plt, fig, axes = _figure(3)
    _stacked_bars(axes[0], entries, lambda e: e["scenario"]["scenario"]["object_name"], "object")
    _stacked_bars(axes[1], entries, lambda e: e["scenario"]["scenario"]["hand_side"], "hand side")
    _stacked_bars(axes[2], entries, _viewpoint, "viewpoint (azimuth / elevation)")
    return _save(plt, fig, out, "counts.png")


def plot_scores(out: str, entries: list[dict], thresholds: dict) -> str:
    plt, fig, axes = _figure(len(SCORES))
    for ax, score in zip(axes, SCORES):
        for status in ("accepted", "rejected"):
            values = [e["qc"]["scores"][score] for e in entries
                      if _status(e) == status and e["qc"]["scores"].get(score) is not None]
            if values:
                bounds = (0, 1) if THRESHOLDS[score][1] else None   # rates and IoUs live in [0, 1]
                ax.hist(values, bins=20, range=bounds, alpha=0.6, color=STATUS_COLORS[status], label=status)
        limit = thresholds.get(THRESHOLDS[score][0])
        if limit is not None:
            ax.axvline(limit, color="black", linestyle="--", label=f"threshold {limit:g}")
        measured = any(e["qc"] and e["qc"]["scores"].get(score) is not None for e in entries)
        ax.set_title(score if measured else f"{score} (not measured)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return _save(plt, fig, out, "qc_scores.png")


def plot_checks(out: str, entries: list[dict], checks: dict) -> str:
    plt, fig, axes = _figure(3)
    depth = [e["scenario"]["checks"]["penetration_mm"] for e in entries]
    axes[0].hist(depth, bins=10, color="tab:blue")
    axes[0].axvline(checks["max_penetration_mm"], color="black", linestyle="--", label="limit")
    axes[0].set_title("penetration depth (mm), kept draws")
    axes[0].legend(fontsize=7)
    fingers = collections.Counter(e["scenario"]["checks"]["contact_fingers"] for e in entries)
    axes[1].bar([str(n) for n in range(6)], [fingers.get(n, 0) for n in range(6)], color="tab:blue")
    axes[1].axvline(checks["min_contact_fingers"] - 0.5, color="black", linestyle="--", label="minimum")
    axes[1].set_title("fingers in contact at the grasp")
    axes[1].legend(fontsize=7)
    reasons = redraw_reasons(entries)
    axes[2].bar(list(reasons) or ["none"], list(reasons.values()) or [0], color="tab:orange")
    axes[2].set_title("why draws were redrawn")
    return _save(plt, fig, out, "pose_checks.png")


def redraw_reasons(entries: list[dict]) -> dict[str, int]:
    counts = collections.Counter(r for e in entries for draw in e["scenario"]["rejected_draws"] for r in draw["reasons"])
    return dict(sorted(counts.items()))


def write_mosaic(out: str, entries: list[dict], status: str, limit: int) -> str | None:
    images = {}
    for entry in [e for e in entries if _status(e) == status][:limit]:
        path = os.path.join(entry["folder"], "first_frame.png")
        if os.path.isfile(path):
            label = f"{entry['name']} q={entry['qc']['quality']:.2f}"
            images[label] = read_image(path)
    name = f"{status}_first_frames.png"
    if not images:
        if os.path.exists(os.path.join(out, CARD_DIR, name)):   # from an earlier merge, under other thresholds
            os.remove(os.path.join(out, CARD_DIR, name))
        return None
    write_image(os.path.join(out, CARD_DIR, name), make_mosaic(images))
    return f"{CARD_DIR}/{name}"


def stage_times(entries: list[dict]) -> dict[str, list[float]]:
    """Seconds per video of each stage, over the finished sequences."""
    times = collections.defaultdict(list)
    for e in entries:
        if e.get("qc") is None:
            continue
        merged = {"scenario_s": e["scenario"].get("scenario_s"), "qc_s": e["qc"].get("qc_s"),
                  **((e.get("manifest") or {}).get("timings") or {})}
        for stage in STAGES:
            if merged.get(stage) is not None:
                times[stage].append(float(merged[stage]))
    return times


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def write_card(out: str, entries: list[dict], index: dict, recorded: dict) -> str:
    """Write ``card.md`` and its plots; returns the card's path."""
    os.makedirs(os.path.join(out, CARD_DIR), exist_ok=True)
    dataset = recorded["dataset"]
    finished = [e for e in entries if e.get("qc") is not None]
    lines = [f"# Dataset card: {os.path.basename(os.path.abspath(out))}", "",
             f"Made by `python -m sim2real.dataset`; card written {datetime.date.today().isoformat()}. "
             f"{index['total']} sequences: **{len(index['accepted'])} accepted**, {len(index['rejected'])} rejected "
             f"(kept on disk under `sequences/`, listed in `index.json`, left out of `dataset/`), {len(index['pending'])} pending, {len(index.get('failed', []))} "
             "failed (no scenario draw passed the trajectory checks).", "",
             "| split | accepted sequences |", "|---|---|",
             *[f"| {split} | {n} |" for split, n in index["splits"].items()], "",
             ("The accepted sequences are in `dataset/` (processed layout: `filelists/<split>/`, one folder per clip "
              "with `video.mp4`, the condition videos, `hand_joints.npz`, `pose_labels.npz`); scores per sequence "
              "in `index.json`." if index["accepted"] else "**No sequence is accepted: `dataset/` is empty.** The "
              "score histograms below show where the videos fall; `python -m sim2real.dataset merge DIR --set "
              "THRESHOLD=VALUE` judges every video again."), "", "## What is in it", "", f"![counts]({plot_counts(out, entries)})", ""]
    lines += ["## Quality control", "", "| score | threshold |", "|---|---|",
              *[f"| {score} | {'not gating' if index['thresholds'][THRESHOLDS[score][0]] is None else index['thresholds'][THRESHOLDS[score][0]]} |"
                for score in SCORES], ""]
    if finished:
        lines += [f"![scores]({plot_scores(out, finished, index['thresholds'])})", ""]
    reasons = redraw_reasons(entries)
    lines += ["## Trajectory checks", "", f"![checks]({plot_checks(out, entries, dataset['checks'])})", "",
              "| draws redrawn because | count |", "|---|---|",
              *([f"| {reason} | {n} |" for reason, n in reasons.items()] or ["| (none) | 0 |"]), ""]
    lines += ["## First frames", ""]
    for status in ("accepted", "rejected"):
        mosaic = write_mosaic(out, entries, status, dataset["mosaic_size"])
        lines += [f"{status.capitalize()}:", "", f"![{status}]({mosaic})" if mosaic else f"(no {status} sequences)", ""]
    times = stage_times(entries)
    lines += ["## Time per video", "", "| stage | mean s | median s | videos |", "|---|---|---|---|",
              *[f"| {stage[:-2]} | {np.mean(v):.2f} | {np.median(v):.2f} | {len(v)} |" for stage, v in times.items()],
              "", "## Config", "", "```yaml", yaml.safe_dump(recorded, sort_keys=False).rstrip(), "```", "",
              "## Versions", "", "| package | version |", "|---|---|",
              *[f"| {k} | {v} |" for k, v in versions().items()], ""]
    path = os.path.join(out, "card.md")
    write_text(path, "\n".join(lines))
    return path
