#!/bin/bash
# Nineteenth session (issue 15: objects too large). Run with train/builtin.py TEACHER_SAMPLING["cfg_max_sigma"] =
# 0.8, set for this call and taken out after it (the results were mixed; benchmarks/TINY_MODEL.md, "Guidance in a
# limited interval"): every teacher below guides only the noise levels up to 0.8, which on the CPU drew v7's
# objects at 1.1 times the truth's share of the frame instead of 1.6 (8 scenes; 1.4 against 2.0 on 24). The quick start runs the student, which
# bakes its teacher's guidance in, so v7's student is distilled further from the one shipped, with that guidance
# (distill reads TEACHER_SAMPLING's cfg_max_sigma as its default); then v7's 96-scene tables with it
# (into /tmp/R/S: what tiny_release.py --student-files takes); the new student against the shipped one on wide
# rigs and given a view; then, while time lasts, call 17a's teacher (.gpu/A) against v7 given a view.
# env: DB (distillation seconds), END
source benchmarks/device_calls/common.sh
V=/tmp/V; mkdir -p $V && cp assets/camgrid-tiny*.safetensors $V/
student_and_tables $V assets/camgrid-tiny-4step-lora.safetensors ${DB:-110} 200
TAIL=14 run wide_student_s0 python3 benchmarks/tiny_wide_rig_consistency.py $V assets --scenes 96 --device cuda \
  --workers 12
TAIL=8 run follow_student python3 benchmarks/tiny_follow_cameras.py $V assets --scenes 32 --source-noise 0.5 \
  --device cuda --modes syncam --student
TAIL=8 run follow_17a python3 benchmarks/tiny_follow_cameras.py .gpu/A assets --scenes 32 --source-noise 0.5 \
  --device cuda --modes syncam,hard,soft
echo "done at $(el) s"
