#!/usr/bin/env bash
# The toy-scale ablation on the held-out trajectories (after toy_world_train.sh): generate with each condition
# set's model, PSNR/SSIM vs ground truth (motion_gen.evaluate), a "hold the first frame" floor, mask IoU of the
# generated hand/object regions (the world's pixel segmenter) vs the conditioning seg mask, one table; then the
# same with the deterministic DDIM sampler instead of the configs' CogVideoX DPM (outputs/toy_world/eval_ddim).
set -euo pipefail
source "$(dirname "$0")/_help.sh" "$@"
source "$(dirname "$0")/_setup.sh" ""
cd "$PAM_ROOT"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # faster than 2 on the shared 2-core machine
# extra arguments (e.g. --set dataset.limit=4) go to both evaluations
ablation() {  # ablation OUT [--set KEY=VALUE ...]: every condition set's run, the floor, IoU, the table in OUT
  local out=$1; shift
  python -m motion_gen.evaluate --config configs/toy_world/eval.yaml --stage generate "$@" --set output=$out
  python -m sim2real.toy_world copy-baseline --eval-dir $out
  python -m motion_gen.evaluate --config configs/toy_world/eval.yaml --stage metrics "$@" --set output=$out
  python -m sim2real.toy_world seg-iou $out/*/ --out $out/seg_iou.json
  python -m sim2real.toy_world table --eval-dir $out
}
out=outputs/toy_world/eval
ablation $out "$@"
ablation ${out}_ddim "$@" --set "run_overrides=[generate.scheduler=ddim]" \
  --set "title=Procedural HOI world, held-out trajectories, DDIM sampler"
# appearance stage: first frames of the held-out clips (random base + untrained / trained branches, joint base)
python -m sim2real.toy_world appearance-eval --out $out/appearance.json
