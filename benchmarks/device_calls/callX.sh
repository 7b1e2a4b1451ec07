#!/bin/bash
# Sixteenth session, first device call (issue 15: views that agree from text alone). v6 (assets/) trained further
# with orbit arcs of 20-160 degrees (the training default for 4 views is 20-120), all three sync stages, then a
# first student. Returns the teacher's and the student's files (for shapes and pictures on the CPU) and, in order
# of need, each against v6 in the same run: text to grid on wide rigs (the student, 96 scenes, seed 0), following
# a given view 0 on the training rigs in both orders, text to grid on seed 1, following on wide arcs, the teacher's
# text to grid, the student's following, camera use.
# env: S H F (stage seconds), SPAN (the training arcs), END
source benchmarks/device_calls/common.sh
S=${S:-200}; H=${H:-60}; F=${F:-30}; SPAN=${SPAN:-20,160}
train_further --arc-span $SPAN --stages syncam,hard,soft --stage-budgets syncam=$S,hard=$H,soft=$F
run distill python3 -m camgrid.train.distill --model /tmp/T --out /tmp/T --budget ${DB:-80} \
  --init-student assets/camgrid-tiny-4step-lora.safetensors
cp /tmp/T/camgrid-tiny-4step-lora.safetensors $OUT/ 2>/dev/null
TAIL=12
wide() { run wide_$1 python3 benchmarks/tiny_wide_rig_consistency.py /tmp/T --scenes 96 --device cuda "${@:2}"
  run wide_v6_$1 python3 benchmarks/tiny_wide_rig_consistency.py assets --scenes 96 --device cuda "${@:2}"; }
follow() { local n=$1; shift; TAIL=6 run follow_$n python3 benchmarks/tiny_follow_cameras.py /tmp/T assets \
  --modes syncam --scenes 32 --source-noise 0.5 --device cuda "$@"; }
wide student_s0
follow preset
follow reversed --view-order reversed
wide student_s1 --seed 1
follow wide --arc-span 60,160
wide teacher_s0 --teacher
follow student_reversed --view-order reversed --student
wide teacher_s1 --teacher --seed 1
[ $(left) -gt 60 ] && run camera_use python3 benchmarks/tiny_camera_use.py /tmp/T assets --scenes 24 --device cuda
echo "done at $(el) s"
