#!/usr/bin/env bash
# Does more compute bring the unconditional DCGAN to FID <= 4x the floor? Trains several settings
# of the `dcgan` variant at once with the plain loop on one device for a fixed wall time, FID every
# few hundred epochs (docs/dcgan.md, "Longer budgets on a GPU"). Needs data/prepared/digits.npz and
# evaluators/digits (`dvc repro evaluator@digits`).
#
#   bash bench/dcgan_budget.sh OUT_DIR [DEVICE] [MINUTES]      e.g. bash bench/dcgan_budget.sh /tmp/budget cuda 5
set -euo pipefail
out=${1:?usage: bench/dcgan_budget.sh OUT_DIR [DEVICE] [MINUTES]}; device=${2:-cuda}; minutes=${3:-5}
mkdir -p "$out"
run() {  # NAME EVAL_EVERY KEY=VALUE...
  local name=$1 every=$2; shift 2
  python bench/plain_loop.py --device "$device" --threads 2 --max-minutes "$minutes" --eval-every "$every" \
    --set epochs=100000 "$@" > "$out/$name.jsonl" 2> "$out/$name.err" &
}
run base 250                                                   # params.yaml: 64/64, batch 64, lr 5e-4
run lr2e-4 250 lr_g=0.0002 lr_d=0.0002                         # the DCGAN paper's learning rate
run ema0.9999 250 ema_decay=0.9999                             # a longer average for a longer run
run wide128 200 g_width=128 d_width=128
run batch256 500 batch_size=256 lr_g=0.001 lr_d=0.001
run wide128_batch256 400 g_width=128 d_width=128 batch_size=256 lr_g=0.001 lr_d=0.001
run batch512 500 batch_size=512 lr_g=0.001 lr_d=0.001
run batch512_lr2e-3 500 batch_size=512 lr_g=0.002 lr_d=0.002  # the setting that reached 4.18x the floor
wait
