#!/bin/bash
# Twenty-fourth session (issue 15: the objects' size), the last call: v8.1's teacher with the word "floor" learned
# by textual inversion and composed into its guidance (`python -m camgrid.train.floor_word`, run on the CPU; its
# three model files in .gpu/E, carried). Its student distilled from v8.1's with that guidance baked in, then the
# 96-scene tables (teacher and student rows, the same scenes and noise as v8.1's recorded ones), then following a
# given view against v8.1 (assets/) if time is left. Returns the student in results.tar (R/S, what
# tiny_release.py --student-files takes).
# env: DB (distillation seconds), SRC (default .gpu/E), END; DEVICE=cpu only to try it here
source benchmarks/device_calls/common.sh
SRC=${SRC:-.gpu/E}
[ -f $SRC/camgrid-tiny.safetensors ] || { echo "call25c: $SRC holds no model files (floor_word's)"; exit 1; }
T=/tmp/E; cp -r $SRC $T && chmod -R u+w $T
student_and_tables $T assets/camgrid-tiny-4step-lora.safetensors ${DB:-150} ${RESERVE:-70}
TAIL=8 run follow python3 benchmarks/tiny_follow_cameras.py $T assets --scenes 32 --source-noise 0.5 \
  --device ${DEVICE:-cuda} --modes syncam,hard,soft --student
echo "done at $(el) s"
