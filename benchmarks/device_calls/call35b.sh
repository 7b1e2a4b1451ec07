#!/bin/bash
# After call35a.sh (thirty-fifth session, issue 15): its model C (call 34c's aligned DiT B, the sync stages trained
# on it, "floor" composed on the background only; teacher: lattice 0.871, objects 0.129 of the frame) made a release
# candidate: its student distilled from v10's for DB seconds with the composed guidance baked in (into $OUT), then
# the 96-scene tables with what is left (/tmp/R/S, which tiny_release.py --student-files takes).
# DB=0: no distillation; the student LoRA carried beside C's files in .gpu/C35 (distilled on a CPU, say) is used;
# DB>0 distils further from that student where it is carried, else from v10's.
# Carry [".gpu/diffusers-0.42.1-py3-none-any.whl", ".gpu/C35"]: C35 is call 35a's three files (its $OUT).
# V10=1: then v10's (assets/) 20-step teacher row on the same 96 close_aligned scenes, into /tmp/R/V, so that
# `python -m camgrid.train.same_views R/V R/S` pairs the two models on the same views.
# env: DB, END, V10; DEVICE=cpu OUT=DIR DB=5 TABLE_SCENES=2 only to try it here
source benchmarks/device_calls/common.sh
MODEL_FILES="camgrid-tiny.safetensors camgrid-tiny-text-ae.safetensors camgrid-tiny-sync.safetensors"
for f in $MODEL_FILES; do
  [ -f .gpu/C35/$f ] || { echo "call35b: .gpu/C35/$f is missing (see the header)"; exit 1; }
done
DB=${DB:-100}
# the model's three files only: a student beside them is taken only with DB=0
mkdir -p /tmp/C && for f in $MODEL_FILES; do cp .gpu/C35/$f /tmp/C/; done
if [ "$DB" -gt 0 ]; then
  # from the student carried beside C's files where there is one (the thirty-seventh session's CPU student), else v10's
  init=assets/camgrid-tiny-4step-lora.safetensors
  [ -f .gpu/C35/camgrid-tiny-4step-lora.safetensors ] && init=.gpu/C35/camgrid-tiny-4step-lora.safetensors
  student_out /tmp/C $init $DB
else
  cp .gpu/C35/camgrid-tiny-4step-lora.safetensors /tmp/C/ || { echo "call35b: DB=0 needs .gpu/C35's student"; exit 1; }
fi
if [ "${V10:-0}" = 1 ]; then
  tables_in_rest /tmp/C 130 200
  mkdir -p /tmp/R/V
  # rows until the time is spent (the tables keep every finished row): the 20-step teacher's first
  run tables_v10 python3 -m camgrid.train.tables --model assets --out /tmp/R/V --scenes ${TABLE_SCENES:-96} \
    --budget 1000 --source-noise 0.5 --scene-style close_aligned --device ${DEVICE:-cuda}
else
  tables_in_rest /tmp/C 10 250
fi
echo "done at $(el) s"
