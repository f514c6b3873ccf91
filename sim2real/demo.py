"""End-to-end demo on the built-in procedural sample: a procedural hand grasps a built-in object (pose), the CPU
renderer turns it into condition maps (sim folder + mp4s), then the tiny appearance and motion models make the
first frame and the video (``sim2real.run``). Needs no MANO file, no weights and no ../shared folder.
``scripts/demo.sh`` runs it with the models trained on the procedural HOI world (``configs/sim2real/toy_world.yaml``,
checkpoints in ``assets/toy_world/``, rendered as that world: 96x144, camera at 0.37 m; docs/toy_world.md).

If the appearance or motion package cannot be imported, it warns and only writes the rendered conditions and
their contact sheet.
"""
from __future__ import annotations

import argparse
import logging
import os
import time

from data_tools.io.cli import positive_int, setup_logging
from data_tools.io.config import load_config
from data_tools.io.contact_sheet import write_contact_sheet
from data_tools.pose.labels import SequenceLabels
from data_tools.pose.objects import BUILTIN_OBJECTS, resolve_object
from data_tools.pose.procedural_hand import load_hand_model
from data_tools.pose.render import RenderConfig, render_trajectory, write_outputs
from data_tools.pose.trajectory import generate_grasp_trajectory, save_trajectory

logger = logging.getLogger("sim2real.demo")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    parser.add_argument("--object", default="mustard_bottle",
                        help=f"built-in object or mesh path (built-ins: {', '.join(sorted(BUILTIN_OBJECTS))})")
    parser.add_argument("--mano", default=None, help="MANO_RIGHT.pkl to use instead of the procedural hand")
    parser.add_argument("--frames", type=positive_int, default=49, help="trajectory frames (default: 49)")
    parser.add_argument("--height", type=int, default=240, help="render height (default: 240)")
    parser.add_argument("--width", type=int, default=360, help="render width (default: 360)")
    parser.add_argument("--seed", type=int, default=0, help="trajectory jitter seed")
    parser.add_argument("--camera-distance", type=float, default=None,
                        help="camera distance in metres (default: the grasp generator's)")
    parser.add_argument("--config", default="configs/sim2real/tiny.yaml", help="sim2real config")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="sim2real config overrides")
    parser.add_argument("--sample-dir", default=None,
                        help="also run a folder of real condition mp4s (e.g. ../shared/samples/dexycb_val)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def generators_available() -> bool:
    try:
        import appearance_gen.generator  # noqa: F401
        import motion_gen.generator  # noqa: F401
    except ImportError as exc:
        logger.warning("appearance/motion generators unavailable (%s): writing the rendered conditions only", exc)
        return False
    return True


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    start = time.perf_counter()
    name = f"procedural_{os.path.splitext(os.path.basename(args.object))[0]}"
    hand = load_hand_model(args.mano)
    logger.info("[1/3] pose: %s hand grasps '%s' (%d frames)", hand.data.name, args.object, args.frames)
    traj = generate_grasp_trajectory(hand, resolve_object(args.object), args.object, args.frames, args.height,
                                     args.width, seed=args.seed, name=name,
                                     **({"camera_distance": args.camera_distance} if args.camera_distance else {}))
    traj_path = save_trajectory(traj, os.path.join(args.out, f"{name}.npz"))
    logger.info("[2/3] render: %dx%d conditions", args.height, args.width)
    render_cfg = RenderConfig(height=args.height, width=args.width, fps=traj.fps)
    bundle = render_trajectory(traj, render_cfg, hand)
    sim_dir = os.path.join(args.out, "sim", name)
    write_outputs(bundle, sim_dir, fps=traj.fps)
    SequenceLabels.from_trajectory(traj, hand, traj.camera.scaled(args.height, args.width)).save(sim_dir)
    sheet = write_contact_sheet(os.path.join(args.out, "conditions_sheet.png"),
                                {**bundle.conditions, "rgb": bundle.extras["rgb"]})
    logger.info("trajectory %s; sim folder and condition mp4s in %s; sheet %s", traj_path, sim_dir, sheet)
    if not generators_available():
        logger.info("demo done in %.0fs (conditions only): %s", time.perf_counter() - start, args.out)
        return 0
    from sim2real.run import Sim2RealConfig, run

    logger.info("[3/3] appearance (first-frame candidates) -> motion (video) with %s", args.config)
    config = load_config(Sim2RealConfig, args.config, args.set)
    if args.mano:
        config.mano_path = args.mano
    inputs = [sim_dir] + ([args.sample_dir] if args.sample_dir else [])
    manifests = run(inputs, os.path.join(args.out, "sim2real"), config, overwrite=True,
                    export_dataset=os.path.join(args.out, "dataset"))
    for manifest in manifests:
        out = manifest["outputs"]
        logger.info("%s: video %s | contact sheet %s | manifest %s", manifest["name"], out["video"],
                    out["contact_sheet"], os.path.join(os.path.dirname(out["video"]), "manifest.json"))
    logger.info("demo done in %.0fs; all outputs under %s", time.perf_counter() - start, os.path.abspath(args.out))
    return 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
