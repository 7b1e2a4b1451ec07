#!/bin/bash
# Seventeenth session, first device call (issue 15: hard and soft, given a view, place objects worse than a copy).
# v7 (assets/) trained further on the three sync stages with the two-stream stages given longer than call X gave
# them (hard 60 s, soft 30 s there), the arcs and flags of call X. Returns the three model files and, against v7 in
# the same run, following a given view 0 in modes syncam, hard and soft (32 held-out scenes, noise seed 0).
# env: S H F (stage seconds), SPAN (the training arcs), END
source benchmarks/device_calls/common.sh
S=${S:-150}; H=${H:-220}; F=${F:-110}; SPAN=${SPAN:-20,160}
mkdir -p /tmp/T
run train python3 -m camgrid train --init assets --device cuda --out /tmp/T --workers 13 --samples 30000 --batch 96 \
  --lr 4e-4 --ema 0.998 --camera-rays --relative-cameras --given-view-share 0.5 --view-order shuffled \
  --arc-span $SPAN --stages syncam,hard,soft --stage-budgets syncam=$S,hard=$H,soft=$F --checkpoint-every 100000 \
  --no-progress
cp /tmp/T/camgrid-tiny.safetensors /tmp/T/camgrid-tiny-sync.safetensors /tmp/T/camgrid-tiny-text-ae.safetensors $OUT/
cp /tmp/T/loss.csv /tmp/T/progress.json /tmp/R/ 2>/dev/null; pack
TAIL=8 run follow_all python3 benchmarks/tiny_follow_cameras.py /tmp/T assets --modes syncam,hard,soft --scenes 32 \
  --source-noise 0.5 --device cuda
echo "done at $(el) s"
