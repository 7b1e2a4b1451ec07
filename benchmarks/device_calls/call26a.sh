#!/bin/bash
# Twenty-fifth session (issue 15: the objects' size). v8.1 with the word "floor" composed only into the noisiest
# guided steps (sigma >= 0.8, weight 1: the objects at their true size on 8 CPU scenes), and its student. The
# teacher's three files are carried in $SRC (default .gpu/FW): the word learned on this CPU by
# `python -m camgrid.train.floor_word --model assets --out DIR --seconds 330 --compose-cfg 0.6` (1,025 steps), its
# files' "compose" meta set to cfg 1, min_sigma 0.8 (the word does not depend on the weight).
# 1. its student distilled for DB seconds from v8.1's (distill bakes the composed guidance in), and its 96-scene
#    tables into /tmp/R/S (student_and_tables);
# 2. v8.1's own 96-scene rows (teacher 20 steps and student 4 steps first; the same scenes and noise) into /tmp/R/V81.
# Both tables keep their grids' detections, so `python -m camgrid.train.same_views` compares the two models on the
# same views here afterwards. Returns the student in $OUT and the rest in results.tar.
# env: SRC, DB (seconds), END; DEVICE=cpu DB=5 TABLE_FLAGS="--scenes 2 --workers 0" only to try it here
source benchmarks/device_calls/common.sh
SRC=${SRC:-.gpu/FW}; DB=${DB:-150}
[ -f $SRC/camgrid-tiny.safetensors ] || { echo "call26a: $SRC holds no model files"; exit 1; }
rm -rf /tmp/FW && cp -r $SRC /tmp/FW
student_and_tables /tmp/FW assets/camgrid-tiny-4step-lora.safetensors $DB 110
cp /tmp/R/S/camgrid-tiny-4step-lora.safetensors $OUT/
TAIL=3 run v81 python3 -m camgrid.train.tables --model assets --out /tmp/R/V81 --scenes 96 --budget $(( $(left) - 25 )) \
  --source-noise 0.5 --device ${DEVICE:-cuda} $TABLE_FLAGS
echo "done at $(el) s"
