#!/bin/bash
# Twenty-seventh session (issue 15: the floor's checkers without the shapes' loss). Call 25a (the floor probe's
# 6,633 steps of the floor alone, then the video stage with floor images at --image-weight 0.5) took the shapes
# judged right from v8.1's 0.93 to 0.75 (seed 0, 24 scenes), and the sync stages after it gave part back (call
# 27b: 0.81). Which of the two lost them was not measured. Here two arms of the video stage with floor images,
# both from v8.1 (assets/) and without the probe, for V seconds each: A at --image-weight 0.5 (call 25a's stage),
# B at 0.25. Then each DiT's floors (its 20-step teacher with v8.1's sync parts). Returns each arm's three model
# files in $OUT/A and $OUT/B; the shapes are judged on the CPU (tiny_shape_accuracy.py), and the arm that keeps
# them gets the sync stages, its student and the tables in the next call.
# env: V (seconds an arm), END; DEVICE=cpu OUT=DIR V=5 SCENES=1 FLAGS="--batch 2 --workers 1 --samples 64"
# only to try it here
source benchmarks/device_calls/common.sh
V=${V:-125}
TDIR=/tmp/A train_further --stages video --stage-budgets video=$V --image-weight 0.5 --image-source floor $FLAGS
teacher_floors A /tmp/A --pictures /tmp/R/A.png
TDIR=/tmp/B train_further --stages video --stage-budgets video=$V --image-weight 0.25 --image-source floor $FLAGS
teacher_floors B /tmp/B --pictures /tmp/R/B.png
echo "done at $(el) s"
