#!/bin/bash
# Twenty-fourth session (issue 15: the objects' size), a short call in what the budget left: the 96-scene tables of
# v8.1's teacher with the word "floor" composed into its guidance (`python -m camgrid.train.floor_word`; its three
# files in .gpu/E, carried; no student, so the student's rows are skipped): the teacher's reprojection rows and its
# novel views, the same scenes and noise as v8.1's recorded ones (benchmarks/tiny_tables.json).
# Ran once (NVIDIA H100, 102 s, END=200): teacher 20 steps, median px independent / syncam / hard / soft 6.89 / 1.47 /
# 3.30 / 3.02 against v8.1's recorded 4.88 / 1.12 / 2.47 / 2.06; novel views, syncam: IoU 0.363 (v8.1 0.399), place
# 4.4 px (3.8) (benchmarks/TINY_MODEL.md "The floor composed into the guidance").
# env: SRC (default .gpu/E), END; DEVICE=cpu TABLE_FLAGS="--scenes 2 --workers 0" only to try it here
source benchmarks/device_calls/common.sh
SRC=${SRC:-.gpu/E}
[ -f $SRC/camgrid-tiny.safetensors ] || { echo "call25d: $SRC holds no model files (floor_word's)"; exit 1; }
TAIL=30 run tables python3 -m camgrid.train.tables --model $SRC --out /tmp/R/TT --scenes 96 --budget $(( $(left) - 20 )) \
  --source-noise 0.5 --device ${DEVICE:-cuda} $TABLE_FLAGS
echo "done at $(el) s"
