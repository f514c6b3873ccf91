"""First-frame inference: K seeds per sequence, a grid PNG per sequence, and the chosen-first-frame list.

Sources: a processed dataset split (``dataset``), condition video folders such as the DexYCB sample
(``folders``), or sim folders of ``rendered_{map}_{i}.png`` (``sim``). Outputs under ``--out``::

    <name>/seed_<s>.png       one candidate per seed
    <name>/grid.png           first-frame conditions next to the candidates
    manifest.json             every sequence: source, prompt, candidates, chosen seed
    first_frames.txt          the chosen candidate per sequence (paths relative to --out), for the motion stage
    sequences.txt             the source of each sequence, same order

``choose`` rewrites the chosen list after looking at the grids (``--choice NAME=SEED``), without generating.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from appearance_gen.config import load_appearance_config
from appearance_gen.generator import AppearanceGenerator
from data_tools.io.atomic import write_json
from data_tools.maps.bundle import ConditionBundle
from data_tools.io.cli import positive_int, setup_logging
from data_tools.io.contact_sheet import write_contact_sheet
from data_tools.errors import DataError
from data_tools.io.filelists import write_filelist
from data_tools.io.video_io import read_image, write_image

logger = logging.getLogger(__name__)
MANIFEST = "manifest.json"
FIRST_FRAMES = "first_frames.txt"
SEQUENCES = "sequences.txt"


def candidate_name(seed: int) -> str:
    return f"seed_{seed}.png"


def write_grid(path: str, bundle: ConditionBundle, condition_names: Sequence[str], images: Mapping[str, np.ndarray],
               cell_height: int = 256) -> str:
    """One-row PNG: the bundle's first-frame conditions, then the labelled ``images``."""
    columns = {name: bundle.conditions[name][0] for name in condition_names}
    columns.update(images)
    return write_contact_sheet(path, columns, num_rows=1, cell_height=min(cell_height, bundle.size[0]))


def generate_sequence(gen: AppearanceGenerator, bundle: ConditionBundle, folder: str, seeds: Sequence[int],
                      overwrite: bool = False, **sampling) -> dict[int, str]:
    """Write ``seed_<s>.png`` per seed and ``grid.png`` in ``folder`` (kept when all exist, unless overwrite)."""
    paths = {s: os.path.join(folder, candidate_name(s)) for s in seeds}
    grid = os.path.join(folder, "grid.png")
    if not overwrite and all(os.path.isfile(p) for p in list(paths.values()) + [grid]):
        logger.info("%s: candidates exist, skipping", folder)
        return paths
    todo = [s for s in seeds if overwrite or not os.path.isfile(paths[s])]
    images = dict(zip(todo, gen.generate(bundle, todo, **sampling))) if todo else {}
    for s, img in images.items():
        write_image(paths[s], img)
    for s in seeds:
        if s not in images:
            images[s] = read_image(paths[s], bundle.size, "resize")
    write_grid(grid, bundle, gen.condition_names, {f"seed {s}": images[s] for s in seeds})
    return paths


def default_choice(seeds: Sequence[int], chosen_seed: int | None = None) -> int:
    """The seed chosen when the user names none: ``chosen_seed``, else 0 when generated, else the first seed."""
    if chosen_seed is not None:
        if chosen_seed not in seeds:
            raise DataError(None, f"chosen seed {chosen_seed} is not among the generated seeds {list(seeds)}")
        return chosen_seed
    return 0 if 0 in seeds else seeds[0]


def parse_choices(items: Iterable[str]) -> dict[str, int]:
    """``["name=3", ...]`` -> ``{"name": 3}``."""
    out = {}
    for item in items:
        name, sep, seed = item.rpartition("=")
        if not sep or not name or not seed.lstrip("-").isdigit():
            raise DataError(None, f"--choice {item!r} must look like NAME=SEED")
        out[name] = int(seed)
    return out


def write_outputs(out: str, records: list[dict], choices: Mapping[str, int] | None = None) -> list[str]:
    """Apply ``choices`` to the records, write the manifest, ``first_frames.txt`` and ``sequences.txt``."""
    choices = dict(choices or {})
    unknown = sorted(set(choices) - {r["name"] for r in records})
    if unknown:
        raise DataError(os.path.join(out, MANIFEST), f"--choice names unknown sequences {unknown}")
    for rec in records:
        if rec["name"] in choices:
            seed = choices[rec["name"]]
            if str(seed) not in rec["candidates"]:
                raise DataError(os.path.join(out, MANIFEST), f"sequence '{rec['name']}' has no candidate for seed {seed}; "
                                                             f"seeds: {list(rec['candidates'])}")
            rec["chosen_seed"] = seed
        rec["chosen"] = rec["candidates"][str(rec["chosen_seed"])]
    write_json(os.path.join(out, MANIFEST), {"sequences": records})
    firsts = [r["chosen"] for r in records]
    write_filelist(os.path.join(out, FIRST_FRAMES), firsts)
    write_filelist(os.path.join(out, SEQUENCES), [r["source"] for r in records])
    return firsts


def read_manifest(out: str) -> list[dict]:
    path = os.path.join(out, MANIFEST)
    if not os.path.isfile(path):
        raise DataError(path, "no manifest: run inference into this folder first")
    with open(path, encoding="utf-8") as f:
        return json.load(f)["sequences"]


def run_inference(gen: AppearanceGenerator, sources: Iterable[tuple[str, ConditionBundle]], out: str,
                  seeds: Sequence[int], chosen_seed: int | None = None, choices: Mapping[str, int] | None = None,
                  overwrite: bool = False, total: int | None = None, **sampling) -> list[dict]:
    """Generate candidates for every ``(source, bundle)`` and write the grids and chosen-frame list."""
    seeds = [int(s) for s in dict.fromkeys(seeds)]
    default = default_choice(seeds, chosen_seed)
    records, used = [], set()
    for source, bundle in tqdm(sources, total=total, desc="appearance"):
        name = bundle.name.strip("/") or "sample"
        if name in used:
            name = f"{name}_{len(records)}"
        used.add(name)
        paths = generate_sequence(gen, bundle, os.path.join(out, name), seeds, overwrite, **sampling)
        records.append({"name": name, "source": source, "prompt": bundle.prompt, "chosen_seed": default,
                        "candidates": {str(s): os.path.relpath(p, out) for s, p in paths.items()},
                        "grid": os.path.join(name, "grid.png")})
        write_outputs(out, records)  # keep the lists usable if a later sequence fails
    if not records:
        raise DataError(None, "no sequences to run")
    write_outputs(out, records, choices)
    return records


# ----------------------------------------------------------------------------------------------- sources
def dataset_sources(root: str, split: str, names: Sequence[str], size, limit: int | None,
                    normal_source: str = "auto"):
    from appearance_gen.conditions import split_conditions, with_normals_from_depth
    from data_tools.datasets.hoi_dataset import HOISplit

    read, derive = split_conditions(root, split, list(names), normal_source)
    ds = HOISplit(root, split, conditions=read, num_frames=1, size=size, load_video=False)
    count = len(ds) if limit is None else min(limit, len(ds))
    fix = with_normals_from_depth if derive else (lambda b: b)
    return ((os.path.join(root, ds.clip_name(i)), fix(ds[i])) for i in range(count)), count


def folder_sources(folders: Sequence[str], names: Sequence[str], size, prompt: str | None,
                   sim: bool) -> Iterator[tuple[str, ConditionBundle]]:
    for folder in folders:
        if sim:
            bundle = ConditionBundle.from_sim_folder(folder, names, num_frames=1, size=size, prompt=prompt)
        else:
            bundle = ConditionBundle.from_video_folder(folder, names, num_frames=1, size=size, prompt=prompt,
                                                       time_sampling="first")
        yield folder, bundle


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m appearance_gen.infer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", required=True, help="output folder")
    common.add_argument("--choice", action="append", default=[], metavar="NAME=SEED",
                        help="chosen seed for one sequence (repeatable)")
    common.add_argument("-v", "--verbose", action="store_true")
    gen = argparse.ArgumentParser(add_help=False, parents=[common])
    gen.add_argument("--config", default="configs/appearance/tiny.yaml", help="appearance config YAML")
    gen.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    gen.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: sampling.seeds)")
    gen.add_argument("--chosen-seed", type=int, default=None, help="seed written to first_frames.txt (default 0)")
    gen.add_argument("--steps", type=positive_int, default=None, help="denoising steps")
    gen.add_argument("--guidance", type=float, default=None, help="FLUX guidance scale")
    gen.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                     help="resample conditions to this size (default: sampling.size, else data.size)")
    gen.add_argument("--prompt", default=None, help="prompt for every sequence (default: the source's)")
    gen.add_argument("--device", default=None)
    gen.add_argument("--overwrite", action="store_true", help="regenerate existing candidates")
    gen.add_argument("--untrained-branches", action="store_true",
                     help="allow real FLUX weights without model.controlnet_path (new, untrained branches; debugging)")
    p = sub.add_parser("dataset", parents=[gen], help="a processed dataset split")
    p.add_argument("--root", required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--limit", type=int, default=None, help="first N clips only")
    p = sub.add_parser("folders", parents=[gen], help="condition video folders ({name}.mp4 or *_{name}.mp4)")
    p.add_argument("folders", nargs="+")
    p = sub.add_parser("sim", parents=[gen], help="sim folders of rendered_{map}_{i}.png")
    p.add_argument("folders", nargs="+")
    sub.add_parser("choose", parents=[common], help="rewrite first_frames.txt from --choice without generating")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    choices = parse_choices(args.choice)
    if args.command == "choose":
        firsts = write_outputs(args.out, read_manifest(args.out), choices)
        logger.info("wrote %s (%d sequences)", os.path.join(args.out, FIRST_FRAMES), len(firsts))
        return 0
    cfg = load_appearance_config(args.config, args.set)
    if cfg.model.source == "pretrained" and not cfg.model.controlnet_path:
        if not args.untrained_branches:
            logger.error("%s: model.controlnet_path is not set, so the ControlNet branches would be new and untrained; "
                         "pass --set model.controlnet_path=<training's final/> (or --untrained-branches to run them "
                         "anyway)", args.config)
            return 2
        logger.warning("UNTRAINED ControlNet branches on real FLUX weights (--untrained-branches): the conditions "
                       "barely steer these first frames")
    gen = AppearanceGenerator.from_config(cfg, args.device)
    cfg = gen.config
    size = tuple(args.size or cfg.sampling.size or cfg.data.size)
    seeds = args.seeds or cfg.sampling.seeds
    if args.command == "dataset":
        sources, total = dataset_sources(args.root, args.split, gen.condition_names, size, args.limit,
                                         cfg.data.normal_source)
    else:
        sources, total = folder_sources(args.folders, gen.condition_names, size, args.prompt, args.command == "sim"), len(args.folders)
    if args.prompt is not None and args.command == "dataset":
        sources = ((src, ConditionBundle(b.conditions, args.prompt, name=b.name)) for src, b in sources)
    records = run_inference(gen, sources, args.out, seeds, args.chosen_seed, choices, args.overwrite, total,
                            num_inference_steps=args.steps, guidance_scale=args.guidance)
    logger.info("wrote %d sequences; chosen first frames in %s", len(records), os.path.join(args.out, FIRST_FRAMES))
    return 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
