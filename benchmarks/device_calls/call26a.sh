#!/bin/bash
# Twenty-fifth session (issue 15: the objects' size). v8.1 with the word "floor" composed only into the noisiest
# guided steps (sigma >= 0.8, weight 1: the objects at their true size on 8 CPU scenes), and its student:
# 1. `python -m camgrid.train.floor_word` from v8.1 (assets/) for FW seconds into /tmp/FW;
# 2. its student distilled for DB seconds from v8.1's (distill bakes the composed guidance in), and its 96-scene
#    tables into /tmp/R/S (student_and_tables);
# 3. v8.1's own 96-scene rows (teacher 20 steps and student 4 steps, the same scenes and noise) into /tmp/R/V81.
# Both tables keep their grids' detections, so `python -m camgrid.train.same_views` compares the two models on the
# same views here afterwards. Returns the student in $OUT and the rest in results.tar.
# env: FW DB (seconds), END; DEVICE=cpu FW=5 DB=5 TABLE_FLAGS="--scenes 2 --workers 0" only to try it here
source benchmarks/device_calls/common.sh
FW=${FW:-60}; DB=${DB:-150}
run floor_word python3 -m camgrid.train.floor_word --model assets --out /tmp/FW --seconds $FW --compose-cfg 1 \
  --compose-min-sigma 0.8 --device ${DEVICE:-cuda}
[ -f /tmp/FW/camgrid-tiny.safetensors ] || exit 1
cp /tmp/FW/*.safetensors /tmp/FW/*.json /tmp/R/ 2>/dev/null
student_and_tables /tmp/FW assets/camgrid-tiny-4step-lora.safetensors $DB 75
cp /tmp/R/S/camgrid-tiny-4step-lora.safetensors $OUT/
TAIL=3 run v81 python3 -m camgrid.train.tables --model assets --out /tmp/R/V81 --scenes 96 --budget $(( $(left) - 40 )) \
  --source-noise 0.5 --device ${DEVICE:-cuda} $TABLE_FLAGS
echo "done at $(el) s"
