#!/bin/bash
# Prepared in the fifteenth session, never run: the sixteenth session's call X (callX.sh) trained the wide arcs on
# all three sync stages instead. Run from the repository root on the device with `.gpu` carried (common.sh);
# assets/ is v6. S = the syncam stage's seconds; END = the seconds the script may use.
# Pilot (issue 15, next step): v6's syncam stage trained briefly on wide-arc rigs, then following on wide arcs.
END=${END:-140}
source benchmarks/device_calls/common.sh
mkdir -p /tmp/W
timeout $(left) python3 -m camgrid train --init assets --device cuda --out /tmp/W --workers 13 --samples 30000 --batch 96 \
  --lr 4e-4 --ema 0.998 --arc-span 60,160 --given-view-share 0.5 --view-order shuffled --stages syncam \
  --stage-budgets syncam=${S:-50} --checkpoint-every 100000 --no-progress > $OUT/train.txt 2>&1
echo "train rc=$? at $(el) s"; tail -4 $OUT/train.txt
cp /tmp/W/camgrid-tiny.safetensors /tmp/W/camgrid-tiny-sync.safetensors $OUT/ 2>/dev/null  # for tiny_wide_rig_consistency here
timeout $(left) python3 benchmarks/tiny_follow_cameras.py /tmp/W assets --modes syncam --scenes 32 --steps 20 \
  --source-noise 0.5 --arc-span 60,160 --device cuda > $OUT/follow_wide.txt 2>&1
echo "follow at $(el) s"; tail -6 $OUT/follow_wide.txt
