#!/bin/bash
# Twenty-eighth session (issue 15). Sixteen device starts failed this session (sixteen more in the twenty-ninth, so it
# has not run yet), so the next device call does two jobs:
# 1. call 28d's: the 96-scene tables of call 28c's model and student (.gpu/A28, carried) into /tmp/R/S, rows started
#    within TB seconds (v8.1's full tables took 145 s), for its release (tiny_release.py --student-files);
# 2. the next try for checkers and shapes together: P seconds of call 25a's floor probe, then call 28c's video stage
#    with floor images from it (V seconds, --image-weight W), its DiT in $OUT/A (to judge its shapes in independent
#    mode on the CPU: tiny_shape_accuracy.py --mode independent) and its floors (lattice match, object share;
#    16 held-out scenes; v8.1 0.758, call 28c 0.766, call 27b 0.782 after its probe of 240 s, truth 0.879).
# A probe of 1,232 steps on the CPU (about 45 s of the GPU's) left the DiT drawing almost no objects (7 judged in
# 24 scenes, v8.1 200), so the question is whether the video stage brings them back as shapes.
# If its shapes hold (v8.1 0.925 in independent mode; call 25a 0.738) and the lattice gains, call28c.sh with the
# same P runs its sync stages and student.
# env: TB P V W, END; DEVICE=cpu OUT=DIR TB=1 P=5 V=5 SCENES=1 FLAGS="--batch 2 --workers 1 --samples 64"
# PROBE_FLAGS="--bank 64 --samples 64" only to try it here
source benchmarks/device_calls/common.sh
[ -f .gpu/A28/camgrid-tiny-4step-lora.safetensors ] || { echo "call29a: .gpu/A28 lacks call 28c's files"; exit 1; }
TB=${TB:-170}; P=${P:-60}; V=${V:-130}; W=${W:-0.5}
tables96 .gpu/A28 $TB
floor_video $P $V $W
teacher_floors A /tmp/A --pictures /tmp/R/A.png
echo "done at $(el) s"
