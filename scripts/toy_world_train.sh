#!/usr/bin/env bash
# Train everything of the procedural world on CPU with the normal entry points (after toy_world_generate.sh):
# toy base folders (VAEs trained here), the region segmenter, the appearance ControlNets and one motion model per
# condition set of the ablation (none / depth / seg_mask / hand_keypoints / all three). Seeded; resumable.
# The demo's checkpoints are copied to assets/toy_world/. Usage: scripts/toy_world_train.sh [motion steps]
# (the run in docs/benchmarks.md: `scripts/toy_world_train.sh 400`: motion 400 steps per set for the ablation, 1200
# for the demo's all-conditions model, appearance 300 + joint 4000 from the configs; `python -m sim2real.toy_world finetune-decoder` optionally trains the motion VAE's
# decoder further afterwards, which the committed run skipped for time)
set -euo pipefail
source "$(dirname "$0")/_help.sh" "$@"
source "$(dirname "$0")/_setup.sh" ""
cd "$PAM_ROOT"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # faster than 2 on the shared 2-core machine
steps="${1:-}"
out=outputs/toy_world
motion=configs/motion/toy_world.yaml
[ -f assets/toy_world/motion_base/vae/config.json ] || python -m sim2real.toy_world bases --config configs/toy_world/bases.yaml
[ -f assets/toy_world/segmenter.safetensors ] || python -m sim2real.toy_world fit-segmenter --root $out/processed \
  --size 64x96 --out assets/toy_world/segmenter.safetensors
# motion: encode the clips once (all three conditions), the other sets reuse those latents
python -m motion_gen.prepare --config $motion model.transformer=null data.latents=$out/motion/latents_all
declare -A sets=([none]="[]" [depth]="[depth]" [seg_mask]="[seg_mask]" [hand_keypoints]="[hand_keypoints]"
                 [all]="[hand_keypoints,depth,seg_mask]")
for name in all none depth seg_mask hand_keypoints; do
  conds="${sets[$name]}"
  if [ "$name" != all ]; then
    python -m sim2real.toy_world subset-latents $out/motion/latents_all $out/motion/latents_$name \
      --conditions $(echo "$conds" | tr -d '[]' | tr ',' ' ')
  fi
  python -m motion_gen.train --config $motion model.transformer=null "model.condition_names=$conds" \
    data.latents=$out/motion/latents_$name train.loop.output_dir=$out/motion/$name ${steps:+train.loop.max_steps=$steps}
done
# the demo's all-conditions model: the same training, longer than the ablation's (1200 steps: configs' max_steps)
python -m motion_gen.train --config $motion model.transformer=null data.latents=$out/motion/latents_all \
  train.loop.output_dir=$out/motion/all_demo train.loop.max_steps=1200
# appearance: the normal training (branches on the frozen random base), then the toy base trained jointly with them
python -m appearance_gen.train --config configs/appearance/toy_world.yaml --set model.controlnet_path=null
python -m sim2real.toy_world pretrain-appearance --config configs/appearance/toy_world_joint.yaml \
  --set model.controlnet_path=null --init-base assets/toy_world/appearance_base \
  --base-out assets/toy_world/appearance_joint_base
rm -rf assets/toy_world/motion_all assets/toy_world/appearance_joint
cp -r $out/motion/all_demo/final assets/toy_world/motion_all
cp -r $out/appearance_joint/final assets/toy_world/appearance_joint
rm -rf assets/toy_world/appearance_joint/transformer   # already in appearance_joint_base/
