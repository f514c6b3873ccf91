#!/usr/bin/env bash
# Train everything of the procedural world on CPU with the normal entry points (after toy_world_generate.sh):
# toy base folders (VAEs trained here), the region segmenter, the appearance ControlNets (frozen random base, and
# a toy base trained jointly with them) and one motion model per condition set of the ablation (none / depth /
# seg_mask / hand_keypoints / all three; the demo uses "all"). Two lanes run at once, one thread each (faster than
# two threads per job on a 2-core machine): lane 1 builds the motion base, encodes the latents and trains "all";
# lane 2 builds the appearance base and trains the appearance stage; then the other four condition sets run two
# at a time, the lane of "none" then training the motion VAE's decoder further. Seeded and resumable (every step
# skips or resumes what is already there). Lane logs go to outputs/toy_world/logs/. The demo's checkpoints are
# copied to assets/toy_world/ at the end.
# Usage: scripts/toy_world_train.sh [MOTION_STEPS]   (default: configs/motion/toy_world.yaml's max_steps)
set -euo pipefail
source "$(dirname "$0")/_help.sh" "$@"
source "$(dirname "$0")/_setup.sh" ""
cd "$PAM_ROOT"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
steps="${1:-}"
out=outputs/toy_world
motion=configs/motion/toy_world.yaml
logs=$out/logs
mkdir -p "$logs"
declare -A sets=([none]="[]" [depth]="[depth]" [seg_mask]="[seg_mask]" [hand_keypoints]="[hand_keypoints]"
                 [all]="[hand_keypoints,depth,seg_mask]")

base() {  # base KIND: the toy pretrained folder of one stage, unless it is there; git holds all of it but the
  # seeded random transformer, which a fresh clone writes again (the committed VAE and its latents stay valid)
  if [ ! -f "assets/toy_world/$1_base/vae/config.json" ]; then
    python -m sim2real.toy_world bases --config configs/toy_world/bases.yaml --only "$1"
  elif [ ! -f "assets/toy_world/$1_base/transformer/config.json" ]; then
    python -m sim2real.toy_world bases --config configs/toy_world/bases.yaml --only "$1" --transformers-only
  fi
}

train_motion() {  # train_motion SET: one condition set of the ablation on its (hard-linked) latent store
  local name=$1 conds=${sets[$1]}
  if [ "$name" != all ]; then
    python -m sim2real.toy_world subset-latents $out/motion/latents_all $out/motion/latents_$name \
      --conditions $(echo "$conds" | tr -d '[]' | tr ',' ' ')
  fi
  python -m motion_gen.train --config $motion model.transformer=null "model.condition_names=$conds" \
    data.latents=$out/motion/latents_$name train.loop.output_dir=$out/motion/$name ${steps:+train.loop.max_steps=$steps}
}

lane_motion() {
  base motion
  # encode the clips once with all three conditions; the other sets reuse those latents
  python -m motion_gen.prepare --config $motion model.transformer=null data.latents=$out/motion/latents_all
  train_motion all
}

lane_appearance() {
  base appearance
  [ -f assets/toy_world/segmenter.safetensors ] || python -m sim2real.toy_world fit-segmenter \
    --root $out/processed --size 64x96 --out assets/toy_world/segmenter.safetensors
  # the normal training (branches on the frozen random base), then the toy base trained jointly with them
  python -m appearance_gen.train --config configs/appearance/toy_world.yaml --set model.controlnet_path=null
  python -m sim2real.toy_world pretrain-appearance --config configs/appearance/toy_world_joint.yaml \
    --set model.controlnet_path=null --init-base assets/toy_world/appearance_base \
    --base-out assets/toy_world/appearance_joint_base
}

lane_none_decoder() {  # "none" has no branch (about 17 min beside hand_keypoints' 35): the lane then trains the
  # motion VAE's decoder further (latents and transformers stay valid; skipped when vae_report.json says it is done)
  train_motion none
  python -m sim2real.toy_world finetune-decoder --kind motion
}

run_lane() {  # run_lane NAME FUNCTION [ARGS]: log to $logs/NAME.log, say where on failure
  local name=$1; shift
  echo "lane $name: $* (log: $logs/$name.log)"
  # run in the background and wait: a function called as an `if` condition would run with `set -e` off
  "$@" >"$logs/$name.log" 2>&1 &
  if ! wait $!; then
    echo "lane $name failed; last lines of $logs/$name.log:" >&2
    tail -n 20 "$logs/$name.log" >&2
    return 1
  fi
}

wait_all() {  # wait for every background lane; fail if any failed
  local failed=0 pid
  for pid in "$@"; do wait "$pid" || failed=1; done
  return $failed
}

SECONDS=0
run_lane motion lane_motion & p1=$!
run_lane appearance lane_appearance & p2=$!
wait_all $p1 $p2
echo "phase 1 done after ${SECONDS} s"
run_lane motion_depth train_motion depth & p1=$!
run_lane motion_seg_mask train_motion seg_mask & p2=$!
wait_all $p1 $p2
run_lane motion_hand_keypoints train_motion hand_keypoints & p1=$!
run_lane motion_none lane_none_decoder & p2=$!
wait_all $p1 $p2
echo "all training done after ${SECONDS} s"
# the demo's models, weights in fp16 (the loaders cast back to the config's dtype): assets stay small
python -m sim2real.toy_world pack $out/motion/all/final assets/toy_world/motion_all
python -m sim2real.toy_world pack $out/appearance_joint/final assets/toy_world/appearance_joint --drop transformer
python -m sim2real.toy_world pack $out/appearance_joint/final/transformer assets/toy_world/appearance_joint_base/transformer
