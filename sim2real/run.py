"""Sim-to-real: sim folders or trajectories -> appearance first frames -> chosen frame -> motion video.

For every input sequence (a sim folder of ``rendered_{map}_{i}.png``, a folder of condition mp4s, or a trajectory
``.npz``/``.json`` that is rendered first) it writes ``<out>/<name>/``: ``candidates/seed_<s>.png`` (appearance candidates),
``first_frame.png`` (the chosen one), ``video.mp4`` (motion output), ``conditions/*.mp4``,
``contact_sheet.png`` (conditions | first frame | generated frames) and ``manifest.json`` (inputs, configs,
seeds, timings), the manifest last. Batch runs are resumable (sequences with a manifest are skipped) and
shardable across processes (``--shard i/n``, or the RANK/WORLD_SIZE environment of torchrun/accelerate).

Choosing first frames as in the reference: run with ``--stage appearance`` to write the candidates only, pick one
per sequence, list them in a file (lines ``<name> <image>``, or just ``<image>`` in input order) and rerun with
``--first-frames that_file``. Without a list the candidate ``pick`` of the config is used.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import re
import time
from typing import Sequence

import numpy as np

from data_tools.io.atomic import write_json
from data_tools.maps.bundle import (CONDITION_ALIASES, CONDITION_NAMES, SIM_FILE_RE, ConditionBundle, check_sim_folder,
                                   read_prompt)
from data_tools.io.config import load_config, to_dict
from data_tools.io.contact_sheet import write_contact_sheet
from data_tools.errors import DataError, require_output_dir
from data_tools.runtime.claims import claim, read_claim
from data_tools.maps.style import get_style
from data_tools.pose.render import RenderConfig, render_trajectory
from data_tools.runtime.sharding import parse_shard, process_device
from data_tools.io.video_io import RESIZE_MODES, TIME_SAMPLINGS, read_image, time_indices, write_image, write_video
from sim2real.labels import sequence_labels, write_labels

logger = logging.getLogger("sim2real.run")
TRAJECTORY_SUFFIXES = (".npz", ".json")


@dataclasses.dataclass
class Sim2RealConfig:
    """One sim-to-real run (YAML: configs/sim2real/*.yaml)."""

    appearance_config: str = "configs/appearance/tiny.yaml"
    appearance_overrides: list[str] = dataclasses.field(default_factory=list)
    motion_config: str = "configs/motion/tiny.yaml"
    motion_overrides: list[str] = dataclasses.field(default_factory=list)
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0, 1])   # appearance candidates, one per seed
    pick: int = 0                        # index into seeds of the candidate used when no first frame is given
    motion_seed: int = 0
    appearance_steps: int | None = None  # None: the appearance config's default
    appearance_guidance: float | None = None
    motion_steps: int | None = None
    motion_guidance: float | None = None
    num_frames: int | None = None        # None: the motion config's num_frames
    height: int | None = None            # None: the motion config's size
    width: int | None = None
    resize_mode: str = "crop"
    time_sampling: str = "spread"        # spread: num_frames over the whole input; first: its first num_frames,
    # consecutive (what the released motion model was trained and evaluated on)
    trajectory_fps: float | None = None  # trajectories are retimed to this frame rate first (None: as they are;
    # the released model saw DexYCB's 30 fps)
    prompt: str | None = None            # None: the sequence's prompt.txt / trajectory prompt
    appearance_prompt: str | None = None  # per-stage prompts (the reference uses two); None: ``prompt``'s rule
    motion_prompt: str | None = None
    default_prompt: str = "A hand is grasping an object on a table."
    fps: float = 15.0
    device: str | None = None
    mano_path: str | None = None         # MANO pkl for trajectories (None: procedural hand)
    style: str | None = None             # condition style for rendering and the motion model's fixed streams
    # (data_tools.maps.style; pam_release for the released weights); None: render.style and the motion config's
    render: RenderConfig = dataclasses.field(default_factory=RenderConfig)

    RANGES = {"seeds": (0, None), "pick": (0, None), "motion_seed": (0, None), "appearance_steps": (1, None),
              "motion_steps": (1, None), "appearance_guidance": (0, None), "motion_guidance": (0, None),
              "num_frames": (1, None), "height": (8, None), "width": (8, None), "fps": (1e-3, None),
              "trajectory_fps": (1e-3, None)}

    def __post_init__(self):
        if not self.seeds:
            raise DataError(None, "'seeds' must name at least one appearance seed")
        if self.pick >= len(self.seeds):
            raise DataError(None, f"'pick' is {self.pick} but there are {len(self.seeds)} seeds (candidates)")
        if self.time_sampling not in TIME_SAMPLINGS:
            raise DataError(None, f"'time_sampling' must be one of {TIME_SAMPLINGS}, got {self.time_sampling!r}")
        if self.resize_mode not in RESIZE_MODES:
            raise DataError(None, f"'resize_mode' must be one of {RESIZE_MODES}, got {self.resize_mode!r}")


@dataclasses.dataclass
class SimInput:
    name: str
    path: str
    kind: str  # "sim", "video" (folder of condition mp4s) or "trajectory"


VIDEO_FOLDER_RE = re.compile(r"(^|_)(" + "|".join([*CONDITION_NAMES, *sum(CONDITION_ALIASES.values(), ())]) + r")\.mp4$")


def is_sim_folder(path: str) -> bool:
    return os.path.isdir(path) and any(SIM_FILE_RE.match(f) for f in os.listdir(path))


def is_video_folder(path: str) -> bool:
    """A folder of condition mp4s (``depth.mp4``, ``val_depth.mp4``...), e.g. a converted real clip."""
    return os.path.isdir(path) and any(VIDEO_FOLDER_RE.search(f) for f in os.listdir(path))


def discover(inputs: Sequence[str]) -> list[SimInput]:
    """Expand inputs (sim folders, trajectory files, folders of either, ``.txt`` lists of either) to sequences."""
    found: list[SimInput] = []

    def add(path: str, where: str | None):
        if is_sim_folder(path):
            found.append(SimInput(os.path.basename(os.path.normpath(path)), path, "sim"))
        elif is_video_folder(path):
            found.append(SimInput(os.path.basename(os.path.normpath(path)), path, "video"))
        elif os.path.isfile(path) and path.endswith(TRAJECTORY_SUFFIXES):
            found.append(SimInput(os.path.splitext(os.path.basename(path))[0], path, "trajectory"))
        elif os.path.isfile(path) and path.endswith(".txt"):
            base = os.path.dirname(os.path.abspath(path))
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        entry = line.strip()
                        add(entry if os.path.isabs(entry) else os.path.join(base, entry), path)
        elif os.path.isdir(path):
            children = sorted(os.listdir(path), key=_natural_key)
            before = len(found)
            for child in children:
                full = os.path.join(path, child)
                if is_sim_folder(full) or is_video_folder(full) or (os.path.isfile(full) and full.endswith(TRAJECTORY_SUFFIXES)):
                    add(full, path)
            if len(found) == before:
                raise DataError(path, "no sim folders, condition-video folders or trajectory files inside")
        elif not os.path.exists(path):
            raise DataError(path, "does not exist" + (f" (listed in {where})" if where else ""))
        else:
            raise DataError(where or path, f"{path!r} is not a sim folder, condition-video folder, trajectory "
                                           "(.npz/.json) or list (.txt)")

    for item in inputs:
        add(item, None)
    names = [s.name for s in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(None, f"several inputs share the sequence name(s) {dupes}; rename or run them separately")
    return found


def load_sim_folder(path: str, names, frames, size, resize_mode: str, name: str,
                    time_sampling: str = "spread") -> ConditionBundle:
    """``ConditionBundle.from_sim_folder``, also for folders whose frame indices start above 0 (simulator
    exports often start at the first recorded step): such frames are linked 0-based into a temporary folder."""
    indices = sorted({int(m["index"]) for m in map(SIM_FILE_RE.match, os.listdir(path)) if m})
    if not indices or indices[0] == 0:
        return ConditionBundle.from_sim_folder(path, names, frames, size, resize_mode, name=name,
                                                 time_sampling=time_sampling)
    import tempfile

    first = indices[0]
    with tempfile.TemporaryDirectory(prefix="sim_") as tmp:
        for entry in os.listdir(path):
            match = SIM_FILE_RE.match(entry)
            if match:
                os.symlink(os.path.abspath(os.path.join(path, entry)),
                           os.path.join(tmp, f"rendered_{match['name']}_{int(match['index']) - first}.png"))
            elif entry == "prompt.txt":
                os.symlink(os.path.abspath(os.path.join(path, entry)), os.path.join(tmp, entry))
        logger.info("%s: frame indices start at %d; read as 0-based", path, first)
        try:
            return ConditionBundle.from_sim_folder(tmp, names, frames, size, resize_mode, name=name,
                                                   time_sampling=time_sampling)
        except DataError as exc:
            raise DataError(path, f"{exc.problem} (indices counted from {first})") from None


@contextlib.contextmanager
def _removed_if_empty(folder: str | None):
    """On an error, remove ``folder`` again when it holds nothing once the claim is released (a failed sequence
    leaves no empty folder)."""
    try:
        yield
    except BaseException:
        if folder and os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)
        raise


def check_input(seq: SimInput, config: Sim2RealConfig | None = None) -> None:
    """Cheap checks of one input: a trajectory loads and validates (finite, plausible, consistent lengths); a sim
    folder's frame headers are 8-bit RGB/grey of one size; under ``time_sampling: first`` with a set
    ``num_frames``, a trajectory (after ``trajectory_fps``) or sim folder has enough frames. Condition-video
    folders are checked when decoded."""
    need = config.num_frames if config is not None and config.time_sampling == "first" else None
    if seq.kind == "trajectory":
        from data_tools.pose.trajectory import load_trajectory

        traj = load_trajectory(seq.path)
        if need is not None:
            have = traj.retimed(config.trajectory_fps).num_frames if config.trajectory_fps else traj.num_frames
            if have < need:
                raise DataError(seq.path, f"trajectory has {have} frames"
                                          f"{f' at {config.trajectory_fps:g} fps' if config.trajectory_fps else ''}; "
                                          f"time sampling 'first' needs at least {need}")
    elif seq.kind == "sim":
        _, counts = check_sim_folder(seq.path)
        if need is not None:
            short = {k: v for k, v in counts.items() if v < need}
            if short:
                raise DataError(seq.path, f"maps with fewer than {need} frames for time sampling 'first': {short}")
    if seq.kind in ("sim", "video"):
        read_prompt(seq.path)


def available_conditions(seq: SimInput) -> list[str]:
    """Condition maps a sim folder or condition-video folder holds (a trajectory renders them all)."""
    if seq.kind == "trajectory":
        return []
    if seq.kind == "sim":
        found = {m["name"] for m in map(SIM_FILE_RE.match, os.listdir(seq.path)) if m}
    else:
        found = {m.group(2) for m in map(VIDEO_FOLDER_RE.search, os.listdir(seq.path)) if m}
    return [n for n in CONDITION_NAMES if n in found]


def _natural_key(text: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def shard_of(sequences: list, shard: str | None) -> tuple[list, int, int]:
    """Sequences of shard ``i/n`` (or RANK/WORLD_SIZE from the environment), round-robin."""
    index, count = parse_shard(shard)
    return sequences[index::count], index, count


def read_first_frames(path: str, sequences: list[SimInput]) -> dict[str, str]:
    """``name image`` lines, or ``image`` lines (matched by the image's folder name when that names a sequence,
    as in ``appearance_gen.infer``'s ``first_frames.txt``, else in input order) -> {sequence name: image path}."""
    base = os.path.dirname(os.path.abspath(path))
    mapping, ordered = {}, []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) > 2:
                raise DataError(path, f"line {number}: expected '<name> <image>' or '<image>'")
            image = parts[-1] if os.path.isabs(parts[-1]) else os.path.join(base, parts[-1])
            if len(parts) == 2:
                mapping[parts[0]] = image
            else:
                ordered.append(image)
    names = {s.name for s in sequences}
    by_folder = {os.path.basename(os.path.dirname(img)): img for img in ordered}
    if ordered and len(by_folder) == len(ordered) and set(by_folder) <= names:
        mapping.update(by_folder)  # appearance_gen.infer's first_frames.txt: <name>/seed_<s>.png
    elif ordered:
        if len(ordered) != len(sequences):
            raise DataError(path, f"{len(ordered)} images for {len(sequences)} sequences (use '<name> <image>' lines)")
        mapping.update({s.name: img for s, img in zip(sequences, ordered)})
    return mapping


class Sim2Real:
    """Holds the two generators (loaded lazily, once) and runs sequences through them."""

    def __init__(self, config: Sim2RealConfig):
        get_style(config.style or config.render.style)   # an unknown style fails before any model loads
        # one GPU per process under torchrun / accelerate (LOCAL_RANK)
        self.config = dataclasses.replace(config, device=process_device(config.device))
        self._generators: dict[str, object] = {}

    def _generator(self, stage: str):
        """The ``stage`` ("appearance" or "motion") generator, loaded on first use from the configured YAML."""
        if self._generators.get(stage) is None:
            if stage == "appearance":
                from appearance_gen.generator import AppearanceGenerator as Generator
            else:
                from motion_gen.generator import MotionGenerator as Generator
            path, overrides = getattr(self.config, f"{stage}_config"), getattr(self.config, f"{stage}_overrides")
            if stage == "motion" and self.config.style:
                overrides = [*overrides, f"generate.style={self.config.style}"]
            start = time.perf_counter()
            self._generators[stage] = Generator.load(path, overrides, self.config.device)
            logger.info("loaded %s model %s in %.1fs", stage, path, time.perf_counter() - start)
        return self._generators[stage]

    @property
    def appearance(self):
        return self._generator("appearance")

    @property
    def motion(self):
        return self._generator("motion")

    def target_shape(self) -> tuple[int, tuple[int, int]]:
        cfg = self.config
        pick = lambda given, default: default if given is None else given  # noqa: E731  (0 is refused at load)
        return pick(cfg.num_frames, self.motion.num_frames), (pick(cfg.height, self.motion.height),
                                                              pick(cfg.width, self.motion.width))

    def trajectory_frames(self, seq: SimInput, frames: int, size: tuple[int, int]):
        """The trajectory of ``seq`` at ``trajectory_fps`` with only the ``frames`` frames that are kept."""
        from data_tools.pose.trajectory import load_trajectory

        cfg = self.config
        traj = load_trajectory(seq.path)
        if cfg.trajectory_fps is not None:
            traj = traj.retimed(cfg.trajectory_fps)
        camera = traj.camera
        if abs(camera.width / camera.height - size[1] / size[0]) > 0.01 * size[1] / size[0]:
            logger.warning("%s: its camera is %dx%d but it is rendered at %dx%d: pixels are stretched (give the "
                           "trajectory a camera of the render's aspect)", seq.path, camera.height, camera.width, *size)
        try:
            return traj.subset(time_indices(traj.num_frames, frames, cfg.time_sampling))  # render only those
        except DataError as exc:
            raise DataError(seq.path, f"trajectory {exc.problem}") from None

    def load_bundle(self, seq: SimInput, timings: dict) -> ConditionBundle:
        """The sequence's conditions at the generation size (trajectories are rendered at that size first)."""
        cfg = self.config
        frames, size = self.target_shape()
        names = list(dict.fromkeys(list(self.appearance.condition_names) + list(self.motion.condition_names)
                                   + available_conditions(seq)))   # every map the source has: labels and export
        start = time.perf_counter()
        if seq.kind == "sim":
            bundle = load_sim_folder(seq.path, names, frames, size, cfg.resize_mode, seq.name, cfg.time_sampling)
        elif seq.kind == "video":
            bundle = ConditionBundle.from_video_folder(seq.path, names, frames, size, cfg.resize_mode, name=seq.name,
                                                       time_sampling=cfg.time_sampling)
        else:
            traj = self.trajectory_frames(seq, frames, size)
            render_cfg = dataclasses.replace(cfg.render, height=size[0], width=size[1], style=cfg.style or cfg.render.style)
            rendered = render_trajectory(traj, render_cfg, traj.hand_model(cfg.mano_path),
                                         base_dir=os.path.dirname(os.path.abspath(seq.path)))
            timings["render_s"] = round(time.perf_counter() - start, 3)
            missing = [n for n in names if n not in rendered.conditions]
            if missing:
                raise DataError(seq.path, f"the renderer does not produce conditions {missing} needed by the models")
            everything = list(dict.fromkeys(names + list(rendered.conditions)))
            bundle = dataclasses.replace(rendered.select(everything), name=seq.name)
        timings["load_s"] = round(time.perf_counter() - start, 3)
        prompt = cfg.prompt if cfg.prompt is not None else (bundle.prompt or cfg.default_prompt)
        return dataclasses.replace(bundle, prompt=prompt)

    def run_sequence(self, seq: SimInput, out_dir: str, first_frame_path: str | None = None,
                     stage: str = "all", choose=None) -> dict | None:
        """Process one sequence; returns its manifest (None for ``stage='appearance'``). ``choose(images, bundle)
        -> (index, details)`` picks the first-frame candidate instead of the config's ``pick``."""
        cfg = self.config
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        bundle = self.load_bundle(seq, timings)
        logger.info("%s: %s with %d frames at %s", seq.name, seq.kind, bundle.num_frames, bundle.size)
        candidates = {}
        prompts = {stage: bundle.prompt if given is None else given
                   for stage, given in (("appearance", cfg.appearance_prompt), ("motion", cfg.motion_prompt))}
        if first_frame_path is None:
            start = time.perf_counter()
            images = self.appearance.generate(dataclasses.replace(
                bundle.select(self.appearance.condition_names), prompt=prompts["appearance"]), cfg.seeds,
                cfg.appearance_steps, cfg.appearance_guidance)
            timings["appearance_s"] = round(time.perf_counter() - start, 3)
            for seed, image in zip(cfg.seeds, images):
                candidates[seed] = write_image(os.path.join(out_dir, "candidates", f"seed_{seed}.png"), image)
            if stage == "appearance":
                logger.info("%s: wrote %d candidates to %s", seq.name, len(images), os.path.join(out_dir, "candidates"))
                return None
            pick, details = choose(images, bundle) if choose is not None else (cfg.pick, {})
            if not 0 <= pick < len(images):
                raise DataError(None, f"pick={pick} is outside the {len(images)} candidates")
            first = images[pick]
            chosen = {"source": "candidate", "seed": cfg.seeds[pick], "path": candidates[cfg.seeds[pick]], **details}
        else:
            first = read_image(first_frame_path, bundle.size, cfg.resize_mode)
            chosen = {"source": "file", "path": os.path.abspath(first_frame_path)}
        write_image(os.path.join(out_dir, "first_frame.png"), first)
        start = time.perf_counter()
        video = self.motion.generate(first, dataclasses.replace(bundle.select(self.motion.condition_names),
                                                                prompt=prompts["motion"]),
                                     cfg.motion_seed, cfg.motion_steps, cfg.motion_guidance)
        timings["motion_s"] = round(time.perf_counter() - start, 3)
        start = time.perf_counter()
        video_path = write_video(os.path.join(out_dir, "video.mp4"), video, fps=cfg.fps)
        bundle.save_video_folder(os.path.join(out_dir, "conditions"), fps=cfg.fps)
        sheet = write_contact_sheet(os.path.join(out_dir, "contact_sheet.png"),
                                    {**bundle.conditions, "first frame": first, "generated": video})
        labels = write_labels(out_dir, sequence_labels(seq.kind, seq.path, cfg.mano_path, cfg.trajectory_fps),
                              int(video.shape[0]), tuple(video.shape[1:3]),
                              "resize" if seq.kind == "trajectory" else cfg.resize_mode,
                              bundle.conditions.get("seg_mask"), cfg.fps, cfg.time_sampling)
        timings["write_s"] = round(time.perf_counter() - start, 3)
        timings["total_s"] = round(time.perf_counter() - t0, 3)
        manifest = {
            "name": seq.name, "input": {"kind": seq.kind, "path": os.path.abspath(seq.path)},
            "prompt": bundle.prompt, "prompts": prompts, "num_frames": int(video.shape[0]), "size": list(video.shape[1:3]),
            "conditions": {"appearance": list(self.appearance.condition_names) if candidates else None,
                           "motion": list(self.motion.condition_names)},
            "seeds": {"appearance": list(cfg.seeds) if candidates else [], "motion": cfg.motion_seed},
            "first_frame": chosen, "config": to_dict(cfg),
            "model_configs": {stage: _config_dict(self._generators.get(stage)) for stage in ("appearance", "motion")},
            "outputs": {"video": video_path, "first_frame": os.path.join(out_dir, "first_frame.png"),
                        "contact_sheet": sheet, "conditions": os.path.join(out_dir, "conditions"),
                        "candidates": {str(k): v for k, v in candidates.items()}, "labels": labels},
            "timings": timings, "versions": _versions(),
        }
        write_json(os.path.join(out_dir, "manifest.json"), manifest)
        return manifest


def _config_dict(generator) -> dict | None:
    """The resolved config of a loaded generator (``config`` or ``cfg`` dataclass), for the manifest."""
    config = getattr(generator, "config", None) or getattr(generator, "cfg", None)
    return to_dict(config) if dataclasses.is_dataclass(config) else None


def _versions() -> dict:
    import torch

    return {"torch": torch.__version__, "numpy": np.__version__,
            "device": "cuda" if torch.cuda.is_available() else "cpu"}


def run(inputs: Sequence[str], out: str, config: Sim2RealConfig, shard: str | None = None,
        first_frames: str | None = None, stage: str = "all", overwrite: bool = False,
        export_dataset: str | None = None, export_split: str = "train") -> list[dict]:
    """Run every (this shard's) sequence not yet done; returns the manifests written. With ``export_dataset``,
    every finished sequence under ``out`` is then laid out there as a processed dataset (``sim2real.export``)."""
    from tqdm import tqdm

    sequences = discover(inputs)
    chosen = read_first_frames(first_frames, sequences) if first_frames else {}
    mine, index, count = shard_of(sequences, shard)
    todo = [s for s in mine if overwrite or stage != "all" or not os.path.isfile(os.path.join(out, s.name, "manifest.json"))]
    for seq in todo:  # refuse bad inputs before any model loads or any output is written
        check_input(seq, config)
        require_output_dir(os.path.join(out, seq.name), "sequence output folder")
    logger.info("%d sequences, shard %d/%d has %d, %d to do (outputs in %s)", len(sequences), index, count,
                len(mine), len(todo), out)
    engine, manifests = Sim2Real(config), []
    for seq in tqdm(todo, desc="sim2real", disable=len(todo) < 2):
        folder = os.path.join(out, seq.name)
        created = not os.path.exists(folder)
        with _removed_if_empty(folder if created else None), claim(folder) as ours:
            # another worker on the same shard does each sequence once
            done = stage == "all" and not overwrite and os.path.isfile(os.path.join(folder, "manifest.json"))
            if not ours or done:
                if done:
                    logger.info("%s: done by another worker", seq.name)
                else:
                    logger.warning("%s: claimed by another live worker %s; skipped (rerun once it is gone)",
                                   seq.name, read_claim(folder))
                continue
            manifest = engine.run_sequence(seq, folder, chosen.get(seq.name), stage)
        if manifest:
            logger.info("%s: video %s, contact sheet %s (%.1fs)", seq.name, manifest["outputs"]["video"],
                        manifest["outputs"]["contact_sheet"], manifest["timings"]["total_s"])
            manifests.append(manifest)
    if export_dataset and stage == "all":
        from sim2real.export import export_dataset as export

        export(out, export_dataset, export_split)
    return manifests


def add_run_arguments(parser: argparse.ArgumentParser, config: str, out: str) -> argparse.ArgumentParser:
    """The options of a sim2real run (also used by ``sim2real.release``), with the given defaults."""
    parser.add_argument("inputs", nargs="+", help="sim folders, condition-video folders, trajectory .npz/.json, folders of them, or .txt lists")
    parser.add_argument("--out", default=out, help=f"output root (default: {out})")
    parser.add_argument("--config", default=config, help=f"sim2real YAML (default: {config})")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. seeds=[0,1,2] render.table=false")
    parser.add_argument("--shard", default=None, help="i/n: process every n-th sequence from i (default: RANK/WORLD_SIZE)")
    parser.add_argument("--first-frames", default=None, help="file of chosen first frames ('<name> <image>' lines)")
    parser.add_argument("--stage", default="all", choices=("all", "appearance"),
                        help="appearance: only write first-frame candidates (to pick from)")
    parser.add_argument("--overwrite", action="store_true", help="redo sequences that already have a manifest")
    parser.add_argument("--export-dataset", default=None, metavar="DIR",
                        help="also lay the finished sequences out as a processed dataset in DIR (video, conditions, "
                             "hand_joints.npz, pose_labels.npz, filelists, prompts.jsonl)")
    parser.add_argument("--export-split", default="train", help="split the exported clips are listed in (default: train)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    return add_run_arguments(parser, "configs/sim2real/tiny.yaml", "outputs/sim2real").parse_args(argv)


def main(argv=None) -> int:
    from data_tools.io.cli import setup_logging

    args = parse_args(argv)
    setup_logging(args.verbose)
    config = load_config(Sim2RealConfig, args.config, args.set)
    run(args.inputs, args.out, config, args.shard, args.first_frames, args.stage, args.overwrite,
        args.export_dataset, args.export_split)
    return 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
