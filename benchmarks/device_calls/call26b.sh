#!/bin/bash
# Twenty-fifth session (issue 15: the floor). Call 25a's model (v8.1 + the floor probe + the video stage with floor
# images captioned "floor": its teacher draws the lattice at 0.787 in whole scenes, but its sync parts were trained
# on v8.1's base, and syncam lost its agreement: 3.34 px against v8.1's 1.09 on 24 CPU scenes) in .gpu/A25, carried.
# The three sync stages trained on it with v8's arcs for SS, HH and FF seconds (longer in all than call 24c's 300 s),
# then its teacher's floors. Returns the three model files in $OUT: the next call distils its student and runs the
# tables (SRC=DIR bash benchmarks/device_calls/call17b.sh with v8.1's student beside them).
# Ran once (NVIDIA H100, 428 s wall, END=470): 522 + 418 + 457 steps; lattice 0.777 in whole scenes, object share
# 0.247 (16 held-out scenes); on 24 held-out scenes on the CPU its teacher's views agree as well as v8.1's on the
# same views (benchmarks/TINY_MODEL.md "The same views, measured"). Its files: the next call's.
# env: SS HH FF (stage seconds), END; DEVICE=cpu OUT=DIR SS=5 HH=5 FF=5 SCENES=1
# FLAGS="--batch 2 --workers 1 --samples 64" only to try it here
source benchmarks/device_calls/common.sh
[ -f .gpu/A25/camgrid-tiny.safetensors ] || { echo "call26b: .gpu/A25 holds no model files (call 25a's)"; exit 1; }
SS=${SS:-110}; HH=${HH:-180}; FF=${FF:-90}
train_further --init .gpu/A25 --arc-span 20,160 --stages syncam,hard,soft \
  --stage-budgets syncam=$SS,hard=$HH,soft=$FF $FLAGS
teacher_floors new /tmp/T --pictures /tmp/R/new.png
echo "done at $(el) s"
