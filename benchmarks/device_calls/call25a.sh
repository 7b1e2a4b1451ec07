#!/bin/bash
# Twenty-fourth session (issue 15: the floor and the objects' size). Calls 23a-24c's files were lost with the last
# session's machine, so their path is run again from v8.1 (assets/) in one call: the floor probe's own loop (single
# frames of the floor alone, as call 23a) for V1 seconds, saved as a model folder, then the recipe's video stage
# with floor images captioned "floor" (--image-weight 0.5 --image-source floor, as call 24a's arm F) for V2 seconds.
# The result is a DiT that has a word for the floor, for sampling that adds the "floor" caption's direction to the
# scene's (train/builtin.py), before the sync stages are trained on it. Returns the three model files in $OUT, the
# floors and pictures in results.tar.
# Ran once (NVIDIA H100, 527 s, END=555): the probe 6,633 steps in 240 s (its frames' lattice 0.791, truth 0.896),
# the stage 612 steps; the teacher's lattice 0.787 in whole scenes and 0.903 on the empty rigs asked for "floor"
# (truth 0.879, 0.909), object share 0.244 (benchmarks/TINY_MODEL.md "The floor composed into the guidance").
# No device time was left for the sync stages on this base.
# env: V1 V2 (seconds), FLAGS (more trainer flags), PROBE_FLAGS, SCENES, END; DEVICE=cpu OUT=DIR V1=5 V2=5 SCENES=1
# FLAGS="--batch 2 --workers 1 --samples 64" PROBE_FLAGS="--bank 64 --samples 64" only to try it here
source benchmarks/device_calls/common.sh
V1=${V1:-240}
V2=${V2:-$(( $(left) - V1 - 175 ))}   # the probe's setup (about 75 s), the stage's (40 s), two measures (60 s)
mkdir -p /tmp/T0
run probe python3 benchmarks/tiny_floor_probe.py --device ${DEVICE:-cuda} --style close --init assets \
  --budget $V1 --eval-every 2000 --save-model /tmp/T0 $PROBE_FLAGS
train_further --init /tmp/T0 --stages video --stage-budgets video=$V2 --image-weight 0.5 --image-source floor $FLAGS
teacher_floors new /tmp/T --pictures /tmp/R/new.png
teacher_floors new_ind_empty /tmp/T --empty --mode independent --empty-caption floor --pictures /tmp/R/new_ind_empty.png
echo "done at $(el) s"
