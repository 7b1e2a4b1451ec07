#!/bin/bash
# Seventeenth session, second device call (issue 15): call 17a's teacher (.gpu/A: its three model files and its
# first student) gets its student distilled further and the 96-scene tables (both into /tmp/R/S, the folder
# tiny_release.py --student-files takes); then, against v7 (assets/) in the same run: following a given view 0 in
# syncam, hard and soft (noise seeds 0 and 1), syncam in reversed order, the student; text to grid on wide rigs
# (teacher and student, noise seed 0, 96 scenes); camera use.
# Also the third call of the twenty-second session's plan (call22b.sh): SRC=.gpu/C, a teacher and a student to
# start from in place of .gpu/A, measured against assets/.
# env: DB (distillation seconds), SRC (default .gpu/A), END
source benchmarks/device_calls/common.sh
T=/tmp/A; cp -r ${SRC:-.gpu/A} $T && chmod -R u+w $T   # a writable copy: its student is replaced
student_and_tables $T $T/camgrid-tiny-4step-lora.safetensors ${DB:-100} 260
follow() { local n=$1; shift; TAIL=8 run follow_$n python3 benchmarks/tiny_follow_cameras.py $T assets \
  --scenes 32 --source-noise 0.5 --device cuda "$@"; }
wide() { TAIL=14 run wide_$1 python3 benchmarks/tiny_wide_rig_consistency.py $T assets --scenes 96 --device cuda \
  --workers 12 "${@:2}"; }
follow all --modes syncam,hard,soft
wide student_s0
follow student --modes syncam --student
wide teacher_s0 --teacher
follow reversed --modes syncam --view-order reversed
follow hardsoft_s1 --modes hard,soft --seed 1
run camera_use python3 benchmarks/tiny_camera_use.py $T assets --scenes 24 --device cuda
echo "done at $(el) s"
