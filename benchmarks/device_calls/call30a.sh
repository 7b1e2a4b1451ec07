#!/bin/bash
# Thirtieth session (issue 15). Call 29a showed that even 60 s of the floor probe costs the shapes (its DiT after
# the video stage: 0.851 judged right, n=168, against v8.1's 0.925 and call 28c's 0.911 in independent mode), so the
# checkers must come from the video stage with floor images alone (call 28c's: 634 steps in 130 s kept the shapes,
# lattice 0.766 against v8.1's 0.758 and the truth's 0.879). This call runs that stage longer, from call 28c's
# model (.gpu/A28, carried): V1 seconds into /tmp/A, its floors, then V2 seconds more from /tmp/A into /tmp/B, its
# floors, so one call gives the trend at two lengths. Judge the shapes of $OUT/A and $OUT/B on the CPU
# (tiny_shape_accuracy.py DIR --scenes 24 --train-scenes 64 --mode independent).
# Not run yet: after call 29a, the thirtieth session's six later starts failed. With a fresh budget: carry .gpu,
# END=560 bash benchmarks/device_calls/call30a.sh (V1=V2=200, about 530 s on an H100).
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
