#!/bin/bash
# Device calls of the fifteenth session (benchmarks/TINY_MODEL.md, v6). Run from the repository root on the device with
# `.gpu` carried: it holds the diffusers wheel (`pip download --no-deps diffusers==0.42.1 -d .gpu`) and the files the
# script names (callG: .gpu/teacherF = call F's teacher, .gpu/studentF.safetensors = its student; callH: .gpu/v5 = v5).
# Second device call (issue 15): the student of teacher F (.gpu/teacherF) distilled further (its soft rows missed
# the 15 % bar after 80 s), the full 96-scene tables, and the follow-cameras cells call F had no time for.
T0=$(date +%s); END=${END:-585}; DB=${DB:-200}
el() { echo $(( $(date +%s) - T0 )); }
left() { local l=$(( END - $(el) )); [ $l -lt 5 ] && l=5; echo $l; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/diffusers-*.whl || exit 1
mkdir -p /tmp/pp /tmp/S && ln -sfn "$PWD" /tmp/pp/camgrid
export PYTHONPATH=/tmp/site:/tmp/pp PYTHONUNBUFFERED=1
T=.gpu/teacherF
nvidia-smi --query-gpu=name --format=csv,noheader
pack() { (cd /tmp && tar -cf $OUT/results.tar S $( ls /tmp/*.txt 2>/dev/null | sed 's|/tmp/||') 2>/dev/null); }
follow() {  # name, then tiny_follow_cameras arguments
  local n=$1; shift
  timeout $(left) python3 benchmarks/tiny_follow_cameras.py "$@" --scenes 32 --steps 20 --source-noise 0.5 \
    --device cuda > /tmp/follow_$n.txt 2>&1; echo "follow $n at $(el) s"; tail -6 /tmp/follow_$n.txt; pack
}
timeout $(left) python3 -m camgrid.train.distill --model $T --out /tmp/S --budget $DB \
  --init-student .gpu/studentF.safetensors > /tmp/S/distill.log 2>&1
echo "distill rc=$? at $(el) s"; tail -5 /tmp/S/distill.log; pack
cp /tmp/S/camgrid-tiny-4step-lora.safetensors $T/
B=$(( $(left) - 110 )); [ $B -gt 160 ] && B=160
timeout $(left) python3 -m camgrid.train.tables --model $T --out /tmp/S --scenes 96 --budget $B --source-noise 0.5 \
  > /tmp/S/tables.log 2>&1
echo "tables rc=$? budget $B at $(el) s"; tail -4 /tmp/S/tables.log; pack
[ $(left) -gt 30 ] && follow syncam_s1 $T assets --modes syncam --seed 1
[ $(left) -gt 30 ] && follow syncam_s1_rev $T assets --modes syncam --view-order reversed --seed 1
# (as run: follow() passes --steps 20, so this student cell sampled 20 steps, not its 4; call H measured the 4)
[ $(left) -gt 30 ] && follow student_s1_rev $T assets --modes syncam --view-order reversed --seed 1 --student
[ $(left) -gt 30 ] && follow hardsoft_s0 $T assets --modes hard,soft
echo "done at $(el) s"
