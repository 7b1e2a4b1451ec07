#!/bin/bash
# Thirtieth session (issue 15). Call 29a showed that even 60 s of the floor probe costs the shapes (its DiT after
# the video stage: 0.851 judged right, n=168, against v8.1's 0.925 and call 28c's 0.911 in independent mode), so the
# checkers must come from the video stage with floor images alone (call 28c's: 634 steps in 130 s kept the shapes,
# lattice 0.766 against v8.1's 0.758 and the truth's 0.879). This call runs that stage longer, from call 28c's
# model (.gpu/A28, carried): V1 seconds into /tmp/A, its floors, then V2 seconds more from /tmp/A into /tmp/B, its
# floors, so one call gives the trend at two lengths. Judge the shapes of $OUT/A and $OUT/B on the CPU
# (tiny_shape_accuracy.py DIR --scenes 24 --train-scenes 64 --mode independent).
# Ran once (thirty-first session, NVIDIA H100, END=560, 531 s wall): A 929 steps, lattice 0.777, object share
# 0.270; B 871 more, 0.783, 0.281 (v9 0.766, 0.251; truth 0.879, 0.125); shapes judged right in independent mode
# 0.942 (A) and 0.954 (B) against v8.1's 0.925 (benchmarks/TINY_MODEL.md "Call 30a"). Next: call30b.sh on B.
# env: V1 V2 (0: /tmp/A only) W, END; DEVICE=cpu OUT=DIR V1=5 V2=5 SCENES=1 FLAGS="--batch 2 --workers 1 --samples 64" only to try it
source benchmarks/device_calls/common.sh
[ -f .gpu/A28/camgrid-tiny.safetensors ] || { echo "call30a: .gpu/A28 lacks call 28c's files"; exit 1; }
V1=${V1:-200}; V2=${V2:-200}; W=${W:-0.5}
floor_video 0 $V1 $W .gpu/A28 /tmp/A
teacher_floors A /tmp/A --pictures /tmp/R/A.png
if [ $V2 -gt 0 ]; then
  floor_video 0 $V2 $W /tmp/A /tmp/B
  teacher_floors B /tmp/B --pictures /tmp/R/B.png
fi
echo "done at $(el) s"
