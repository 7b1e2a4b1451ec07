#!/bin/bash
# Twenty-seventh session (issue 15). Call 28a's chosen arm (the video stage with floor images from v8.1, no floor
# probe; its three model files in .gpu/A28, carried) gets the three sync stages with v8's arcs for SS, HH and FF
# seconds, then its teacher's floors, its student distilled for DB seconds from v8.1's (assets/), and its 96-scene
# tables into /tmp/R/S, to compare with v8.1's (call 27a's R/V81) on the same views. Returns the three model files
# and the student in $OUT, the rest in results.tgz.*.
# env: SS HH FF DB (seconds), END; DEVICE=cpu OUT=DIR SS=5 HH=5 FF=5 DB=5 SCENES=1
# FLAGS="--batch 2 --workers 1 --samples 64" only to try it here
source benchmarks/device_calls/common.sh
[ -f .gpu/A28/camgrid-tiny.safetensors ] || { echo "call28b: .gpu/A28 holds no model files (call 28a's arm)"; exit 1; }
SS=${SS:-150}; HH=${HH:-100}; FF=${FF:-60}; DB=${DB:-60}
train_further --init .gpu/A28 --arc-span 20,160 --stages syncam,hard,soft \
  --stage-budgets syncam=$SS,hard=$HH,soft=$FF $FLAGS
teacher_floors new /tmp/T --pictures /tmp/R/new.png
student_and_tables /tmp/T assets/camgrid-tiny-4step-lora.safetensors $DB 10
cp /tmp/R/S/camgrid-tiny-4step-lora.safetensors $OUT/
echo "done at $(el) s"
