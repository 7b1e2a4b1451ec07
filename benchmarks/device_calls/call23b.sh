#!/bin/bash
# Twenty-second session (issue 15: the floor), after call23a.sh: its model (v8.1 with the floor probe's base DiT,
# 9,756 single-frame floor steps; .gpu/B, carried) draws the lattice in 17-frame clips (0.876 on the empty rigs,
# truth 0.909) but has forgotten the objects (object share 0). Here the recipe's video stage brings them back in
# two segments of V seconds, the teacher's floors and object share measured after each: does the lattice survive
# the objects' return? Returns the second segment's three model files.
# Ran once (NVIDIA H100, 560 s): the lattice went 0.842 -> 0.775 -> 0.767 in whole scenes as the objects came back
# (benchmarks/TINY_MODEL.md "Floors learned on single frames"). FLAGS adds trainer flags to both segments (a CPU pilot
# of --image-weight 0.5 kept no more of the lattice than clips alone).
# Call 24b ran it from call 24a's arm F with FLAGS="--image-weight 0.5 --image-source floor" and
# EMPTY_FLAGS="--empty-caption floor" (the empty rigs under the floor's own caption).
# env: V (seconds per segment), FLAGS (more trainer flags), EMPTY_FLAGS (more flags of the empty rigs' measure),
# SCENES, END; DEVICE=cpu FLAGS="--batch 2 --workers 1
# --samples 64" only to try it here
source benchmarks/device_calls/common.sh
[ -f .gpu/B/camgrid-tiny.safetensors ] || { echo "call23b: .gpu/B holds no model files (call23a.sh's)"; exit 1; }
V=${V:-$(( ($(left) - 190) / 2 ))}   # each segment's setup (about 20 s) and two measures (25-30 s each)
measure() { teacher_floors $1 /tmp/T --pictures /tmp/R/$1.png
  teacher_floors $1_ind_empty /tmp/T --empty --mode independent --pictures /tmp/R/$1_ind_empty.png $EMPTY_FLAGS; }
train_further --init .gpu/B --stages video --stage-budgets video=$V $FLAGS
mv /tmp/R/loss.csv /tmp/R/loss_1.csv; measure seg1
rm -rf /tmp/T1 && mv /tmp/T /tmp/T1   # a fresh --out for the second segment
train_further --init /tmp/T1 --stages video --stage-budgets video=$V $FLAGS
mv /tmp/R/loss.csv /tmp/R/loss_2.csv; measure seg2
echo "done at $(el) s"
