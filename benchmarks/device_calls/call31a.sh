#!/bin/bash
# Thirty-second session (issue 15). Call 30b made call 30a's B a release candidate (its sync stages, student and
# 96-scene tables; benchmarks/TINY_MODEL.md "Call 30b"), but its student misses issue 13's 15 % bar in syncam: a
# median of 1.11 px against its teacher's 0.94 (+18 %; v9's student 1.14 against 1.05). Its student got 50 s of
# distillation (266 steps). This call distils it further for DB seconds from where it stopped, then runs the 96-scene
# tables again (the same scenes and noise) with the rest: the student into $OUT, the tables into /tmp/R/S
# (tiny_release.py --student-files takes that folder).
# Carry [".gpu/diffusers-0.42.1-py3-none-any.whl", ".gpu/C31"]: C31 holds call 30b's three model files and its
# student (/work/gpu30b here).
# env: DB TB, END; DEVICE=cpu OUT=DIR DB=5 TB=5 TABLE_SCENES=2 only to try it here
source benchmarks/device_calls/common.sh
for f in camgrid-tiny.safetensors camgrid-tiny-text-ae.safetensors camgrid-tiny-sync.safetensors \
         camgrid-tiny-4step-lora.safetensors; do
  [ -f .gpu/C31/$f ] || { echo "call31a: .gpu/C31/$f is missing (see the header)"; exit 1; }
done
DB=${DB:-150}; TB=${TB:-150}
mkdir -p /tmp/T && cp .gpu/C31/*.safetensors /tmp/T/
student_out /tmp/T .gpu/C31/camgrid-tiny-4step-lora.safetensors $DB
tables_in_rest /tmp/T 20 $TB
echo "done at $(el) s"
