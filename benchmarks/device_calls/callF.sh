#!/bin/bash
# Device calls of the fifteenth session (benchmarks/TINY_MODEL.md, v6). Run from the repository root on the device with
# `.gpu` carried: it holds the diffusers wheel (`pip download --no-deps diffusers==0.42.1 -d .gpu`) and the files the
# script names (callG: .gpu/teacherF = call F's teacher, .gpu/studentF.safetensors = its student; callH: .gpu/v5 = v5).
# One full device call (issue 15): train the relative-camera teacher from v5, then (in order of need) follow
# cameras, distill its student, the 96-scene tables, and more follow cells while time is left. Every result is
# copied under $OUT as soon as it exists, so a timeout keeps what finished.
# env: S H F (stage seconds), INIT (default assets), END (seconds the script may use, default 585)
T0=$(date +%s); DEV=${DEV:-cuda}; END=${END:-585}; S=${S:-170}; H=${H:-80}; F=${F:-30}; INIT=${INIT:-assets}
el() { echo $(( $(date +%s) - T0 )); }
left() { local l=$(( END - $(el) )); [ $l -lt 5 ] && l=5; echo $l; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/diffusers-*.whl || exit 1
mkdir -p /tmp/pp /tmp/T /tmp/S && ln -sfn "$PWD" /tmp/pp/camgrid
export PYTHONPATH=/tmp/site:/tmp/pp PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader
python3 -m camgrid train --init "$INIT" --device $DEV --out /tmp/T --workers ${WORKERS:-13} --samples 30000 --batch ${BATCH:-96} --lr 4e-4 \
  --ema 0.998 --camera-rays --relative-cameras --given-view-share 0.5 --view-order shuffled \
  --stages syncam,hard,soft --stage-budgets syncam=$S,hard=$H,soft=$F --checkpoint-every 100000 --no-progress \
  > /tmp/T/train.log 2>&1; echo "train rc=$? at $(el) s"; tail -15 /tmp/T/train.log
cp /tmp/T/camgrid-tiny.safetensors $OUT/ 2>/dev/null
pack() { (cd /tmp && tar -cf $OUT/results.tar T/camgrid-tiny-sync.safetensors T/camgrid-tiny-text-ae.safetensors \
  T/loss.csv T/train.log T/progress.json S $( ls /tmp/*.txt 2>/dev/null | sed 's|/tmp/||') 2>/dev/null); }
pack
follow() {  # name, then tiny_follow_cameras arguments
  local n=$1; shift
  timeout $(left) python3 benchmarks/tiny_follow_cameras.py "$@" --scenes ${FSCENES:-32} --steps ${FSTEPS:-20} \
    --source-noise 0.5 --device $DEV > /tmp/follow_$n.txt 2>&1; echo "follow $n at $(el) s"; tail -8 /tmp/follow_$n.txt; pack
}
follow syncam_s0 /tmp/T assets --modes syncam
follow syncam_s0_rev /tmp/T assets --modes syncam --view-order reversed
timeout $(left) python3 -m camgrid.train.distill --model /tmp/T --out /tmp/S --budget 80 \
  --init-student assets/camgrid-tiny-4step-lora.safetensors > /tmp/S/distill.log 2>&1
echo "distill rc=$? at $(el) s"; tail -5 /tmp/S/distill.log; pack
B=$(( $(left) - 25 )); [ $B -gt 150 ] && B=150
timeout $(left) python3 -m camgrid.train.tables --model /tmp/T --student /tmp/S/camgrid-tiny-4step-lora.safetensors \
  --out /tmp/S --scenes 96 --budget $B --source-noise 0.5 > /tmp/S/tables.log 2>&1
echo "tables rc=$? budget $B at $(el) s"; tail -5 /tmp/S/tables.log; pack
[ $(left) -gt 40 ] && follow syncam_s1_rev /tmp/T assets --modes syncam --view-order reversed --seed 1
[ $(left) -gt 40 ] && follow syncam_s1 /tmp/T assets --modes syncam --seed 1
[ $(left) -gt 40 ] && follow hardsoft_s0 /tmp/T assets --modes hard,soft
echo "done at $(el) s"
