#!/bin/bash
# Thirty-second session (issue 15). The video stage with floor images at a loss share of 0.5 (v9, call 30a, v10)
# keeps the shapes but moves the floor's lattice only about 0.009 per 1,000 steps (v9 0.766, v10 0.773, the truth
# 0.879). Does a larger share of floor images move it faster, and what does it cost the objects? Two arms from v10
# (assets/), V seconds each: share WA into /tmp/A, then share WB into /tmp/B, each one's floors measured with v10's
# sync parts (tiny_floor_probe.py --shipped 16 --teacher: lattice match and object share; v10 there: 0.773 and
# 0.246). Judge the shapes of $OUT/A and $OUT/B on the CPU in independent mode against v10's
# (tiny_shape_accuracy.py A B assets --scenes 24 --train-scenes 64 --mode independent).
# Ran once (thirty-second session, NVIDIA H100, END=520, 526 s wall): A (0.8) 716 steps, lattice 0.781, objects
# 0.290 (v10 0.773, 0.246): the objects grow three times as fast per step as at 0.5, the lattice no faster
# (benchmarks/TINY_MODEL.md "Call 32a"). B did not finish: an arm takes about 260 s with its setup, so give
# END >= 600 or V <= 140 for two.
# Carry [".gpu/diffusers-0.42.1-py3-none-any.whl"].
# env: V WA WB, END; DEVICE=cpu OUT=DIR V=5 SCENES=1 FLAGS="--batch 2 --workers 1 --samples 64" only to try it
source benchmarks/device_calls/common.sh
V=${V:-200}; WA=${WA:-0.8}; WB=${WB:-0.95}
floor_video 0 $V $WA assets /tmp/A
teacher_floors A /tmp/A --pictures /tmp/R/A.png
floor_video 0 $V $WB assets /tmp/B
teacher_floors B /tmp/B --pictures /tmp/R/B.png
echo "done at $(el) s"
