"""One conversion command for both stages (``scripts/convert_ckpt.sh``): hands its arguments to
``appearance_gen.convert_ckpt`` or ``motion_gen.convert_ckpt``, chosen from the input:

* ``--reference FILE`` (the reference's ``controlnet.bin`` / ``.safetensors``) -> appearance;
* ``--reference FOLDER`` (the reference's motion transformer folder) -> motion;
* a training checkpoint or training output folder -> the stage whose model config its ``trainer_state.json``
  carries (``controlnet_config``: appearance, ``transformer_config``: motion).

``--stage appearance|motion`` overrides the choice. Examples::

    python -m sim2real.convert_ckpt outputs/motion/dexycb/train --out outputs/motion/dexycb/transformer
    python -m sim2real.convert_ckpt outputs/appearance_flux --out outputs/appearance_flux/latest
    python -m sim2real.convert_ckpt --reference PAM/controlnet.bin --flux FLUX.1-dev --out weights/pam_appearance
"""
from __future__ import annotations

import argparse
import os
import sys

from data_tools.errors import DataError
from data_tools.runtime.checkpoints import resolve_checkpoint, trainer_config_keys

STAGE_CONFIG_KEYS = {"controlnet_config": "appearance", "transformer_config": "motion"}


def detect_stage(checkpoint: str | None, reference: str | None) -> str:
    """``appearance`` or ``motion`` for the given input (see the module docstring)."""
    if reference:
        if os.path.isfile(reference):
            return "appearance"
        if os.path.isdir(reference):
            return "motion"
        raise DataError(reference, "reference checkpoint does not exist")
    if not checkpoint:
        raise DataError(None, "give a checkpoint folder or --reference PATH")
    keys = trainer_config_keys(resolve_checkpoint(checkpoint))
    stages = {STAGE_CONFIG_KEYS[k] for k in keys if k in STAGE_CONFIG_KEYS}
    if len(stages) != 1:
        raise DataError(checkpoint, "cannot tell the stage from trainer_state.json; pass --stage appearance|motion")
    return stages.pop()


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     add_help=False)
    parser.add_argument("--stage", choices=("appearance", "motion"))
    parser.add_argument("--reference", nargs="?", const=True)
    for option in ("--out", "--flux", "--dtype", "--controlnet-config", "--transformer-config", "--pretrained",
                   "--base-path"):
        parser.add_argument(option)  # parsed only so that their values are not taken for the checkpoint
    parser.add_argument("-h", "--help", action="store_true")
    known, rest = parser.parse_known_args(argv)
    if known.help and not known.stage:
        parser.print_help()
        print("\nEach stage's own options: --stage appearance --help, --stage motion --help")
        return 0
    forwarded = [a for a in argv if a not in ("--stage", known.stage)] if known.stage else argv
    positional = next((a for a in rest if not a.startswith("-")), None)
    reference = known.reference if isinstance(known.reference, str) else (positional if known.reference else None)
    stage = known.stage or detect_stage(positional, reference)
    if stage == "appearance":
        from appearance_gen.convert_ckpt import main as convert_main
    else:
        from motion_gen.convert_ckpt import main as convert_main
    return convert_main(forwarded) or 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
