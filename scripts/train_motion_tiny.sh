#!/usr/bin/env bash
# The whole motion stage on CPU with the tiny random model (about a minute): a one-clip dataset from the shared
# DexYCB sample (synthetic clips when it is absent) -> latents -> 20 training steps with checkpoints and validation
# videos -> diffusers transformer folder -> a video from the trained model. Outputs under outputs/motion/tiny/.
# Arguments go to the training step: key=value overrides and the launcher options of train_motion_dexycb.sh
# (--gpus N, --accelerate-config FILE, ...; default: one CPU process, configs/accelerate/cpu.yaml).
set -euo pipefail
source "$(dirname "$0")/_help.sh" "$@"
source "$(dirname "$0")/_setup.sh" ""
cd "$PAM_ROOT"
out=outputs/motion/tiny
python -m motion_gen.tiny_data "$out/dataset"
python -m motion_gen.prepare --config configs/motion/tiny.yaml data.root="$out/dataset"
python -m data_tools.runtime.launch --default-accelerate-config configs/accelerate/cpu.yaml \
  motion_gen.train --config configs/motion/tiny.yaml \
  train.validation_sample="$out/dataset/$(dirname "$(head -n1 "$out/dataset/filelists/train/video.txt")")" "$@"
python -m motion_gen.convert_ckpt "$out/train" --out "$out/transformer"
python -m motion_gen.infer --config configs/motion/tiny.yaml model.transformer="$out/transformer" \
  --conditions "$out/dataset/$(dirname "$(head -n1 "$out/dataset/filelists/train/video.txt")")" --out "$out/infer"
