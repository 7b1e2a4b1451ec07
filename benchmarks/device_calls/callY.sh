#!/bin/bash
# Sixteenth session, second device call (issue 15): call X's teacher (.gpu/X: its three model files and its first
# student, camgrid-tiny-4step-lora.safetensors) gets its student distilled further and the 96-scene tables (both
# into /tmp/R/S, the folder tiny_release.py --student-files takes), then following a given view 0 against v6
# (assets/) in the same run: the teacher in reversed order (call X ran out of time for it), the students in both
# orders on two noise seeds, the teacher on wide arcs, on seed 1, in hard and soft. (Text to grid on wide rigs
# takes ~70 s a model on the device, bound by the CPU's scoring: it runs on this CPU instead.)
# env: DB (distillation seconds), END
source benchmarks/device_calls/common.sh
T=.gpu/X; mkdir -p /tmp/R/S
run distill python3 -m camgrid.train.distill --model $T --out /tmp/R/S --budget ${DB:-170} \
  --init-student $T/camgrid-tiny-4step-lora.safetensors
cp /tmp/R/S/camgrid-tiny-4step-lora.safetensors $T/ || exit 1     # every row below measures this student
B=$(( $(left) - 200 )); [ $B -gt 160 ] && B=160
run tables python3 -m camgrid.train.tables --model $T --out /tmp/R/S --scenes 96 --budget $B --source-noise 0.5
follow() { local n=$1; shift; TAIL=6 run follow_$n python3 benchmarks/tiny_follow_cameras.py $T assets \
  --modes syncam --scenes 32 --source-noise 0.5 --device cuda "$@"; }
follow reversed --view-order reversed
for s in 0 1; do for o in preset reversed; do follow student_s${s}_$o --student --seed $s --view-order $o; done; done
follow wide --arc-span 60,160
follow s1_reversed --seed 1 --view-order reversed
follow hardsoft --modes hard,soft
follow s1 --seed 1
echo "done at $(el) s"
