#!/bin/bash
# Prepared in the fifteenth session, not run (the device time left could not start a machine). Run from the
# repository root on the device with `.gpu` carried, holding the diffusers wheel (`pip download --no-deps
# diffusers==0.42.1 -d .gpu`); assets/ is v6. S = the syncam stage's seconds; END = the seconds the script may use.
# Pilot (issue 15, next step): v6's syncam stage trained briefly on wide-arc rigs, then following on wide arcs.
T0=$(date +%s); END=${END:-140}
el() { echo $(( $(date +%s) - T0 )); }
left() { local l=$(( END - $(el) )); [ $l -lt 5 ] && l=5; echo $l; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/diffusers-*.whl || exit 1
mkdir -p /tmp/pp /tmp/W && ln -sfn "$PWD" /tmp/pp/camgrid
export PYTHONPATH=/tmp/site:/tmp/pp PYTHONUNBUFFERED=1
timeout $(left) python3 -m camgrid train --init assets --device cuda --out /tmp/W --workers 13 --samples 30000 --batch 96 \
  --lr 4e-4 --ema 0.998 --arc-span 60,160 --given-view-share 0.5 --view-order shuffled --stages syncam \
  --stage-budgets syncam=${S:-50} --checkpoint-every 100000 --no-progress > $OUT/train.txt 2>&1
echo "train rc=$? at $(el) s"; tail -4 $OUT/train.txt
cp /tmp/W/camgrid-tiny.safetensors /tmp/W/camgrid-tiny-sync.safetensors $OUT/ 2>/dev/null  # for tiny_wide_rig_consistency here
timeout $(left) python3 benchmarks/tiny_follow_cameras.py /tmp/W assets --modes syncam --scenes 32 --steps 20 \
  --source-noise 0.5 --arc-span 60,160 --device cuda > $OUT/follow_wide.txt 2>&1
echo "follow at $(el) s"; tail -6 $OUT/follow_wide.txt
