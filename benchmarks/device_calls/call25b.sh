#!/bin/bash
# Twenty-fourth session (issue 15), the second call, after call25a.sh: its three model files in .gpu/D (carried;
# v8.1's sync parts on a base that learned the floor and the word "floor"). The three sync stages with v8's recipe
# and arcs, longer than call 24c's 300 s (which left the views agreeing less than v8.1's), then the teacher's floors
# and the teacher's rows of the 96-scene tables (no student yet: its rows are skipped), the same scenes and noise
# as v8.1's recorded ones (benchmarks/tiny_tables.json). Returns the three model files.
# env: SS HH FF (stage seconds), SRC (default .gpu/D), SCENES, END; DEVICE=cpu OUT=DIR SS=5 HH=5 FF=5 SCENES=1
# FLAGS="--batch 2 --workers 1 --samples 64" TABLE_FLAGS="--scenes 2 --workers 0" only to try it here
source benchmarks/device_calls/common.sh
SRC=${SRC:-.gpu/D}
[ -f $SRC/camgrid-tiny.safetensors ] || { echo "call25b: $SRC holds no model files (call25a.sh's)"; exit 1; }
SS=${SS:-130}; HH=${HH:-200}; FF=${FF:-120}
train_further --init $SRC --arc-span 20,160 --stages syncam,hard,soft --stage-budgets syncam=$SS,hard=$HH,soft=$FF \
  $FLAGS
teacher_floors new /tmp/T --pictures /tmp/R/new.png
run tables python3 -m camgrid.train.tables --model /tmp/T --out /tmp/R/TT --scenes 96 --budget $(( $(left) - 15 )) \
  --source-noise 0.5 --device ${DEVICE:-cuda} $TABLE_FLAGS
echo "done at $(el) s"
