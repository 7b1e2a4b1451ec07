#!/bin/bash
# Sixteenth session, third device call (issue 15): what calls X and Y had no time for, call X's teacher (.gpu/X)
# with call Y's student against v6 (assets/) in the same run: camera use, following a given view 0 on noise seed
# 1 (preset order), and text to grid on wide rigs for the student and the teacher (12 processes scoring).
# env: END
source benchmarks/device_calls/common.sh
T=.gpu/X
TAIL=14 run camera_use python3 benchmarks/tiny_camera_use.py $T assets --scenes 24 --device cuda
TAIL=6 run follow_s1 python3 benchmarks/tiny_follow_cameras.py $T assets --modes syncam --scenes 32 --source-noise 0.5 \
  --device cuda --seed 1
TAIL=14 run wide_student_s0 python3 benchmarks/tiny_wide_rig_consistency.py $T assets --scenes 96 --device cuda --workers 12
TAIL=14 run wide_teacher_s0 python3 benchmarks/tiny_wide_rig_consistency.py $T assets --scenes 96 --device cuda \
  --workers 12 --teacher
echo "done at $(el) s"
