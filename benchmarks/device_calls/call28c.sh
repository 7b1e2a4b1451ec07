#!/bin/bash
# Twenty-seventh session (issue 15: the floor's checkers without the shapes' loss). Four starts failed before a
# call of two arms (weights 0.5 and 0.25, then a second call for the sync stages) could run, so one call does one
# arm's whole path. Call 25a (the floor probe's 6,633 steps of the floor alone, then the video stage with floor
# images at --image-weight 0.5) took the shapes judged right from v8.1's 0.93 to 0.75 (seed 0, 24 scenes; 0.74 in
# independent mode, the DiT alone). Here the same video stage from v8.1 (assets/) without the probe, for V seconds
# at weight W: its DiT and text files in $OUT/A (the sync parts are v8.1's), for the shapes to be judged on the CPU
# right after the video stage. Then the three sync stages on it with v8's arcs (SS, HH, FF seconds), the teacher's
# floors, and its student distilled for DB seconds from v8.1's: the three model files and the student in $OUT.
# The next call runs its tables (call28d.sh).
# Ran once (NVIDIA H100, 507 s wall, END=565): the video stage 634 steps in 130 s; syncam 680 steps in 120 s, hard
# 187 in 80 s, soft 264 in 50 s; lattice 0.766, object share 0.251 (16 held-out scenes); the student 311 steps in
# 25 s. Shapes judged right (this CPU, seed 0, 24 scenes): 0.911 after the video stage (independent; v8.1 0.925),
# 0.962 at the end (syncam; v8.1 0.926). Its files: .gpu/A28 (benchmarks/TINY_MODEL.md "Call 28c").
# P > 0 runs call 25a's floor probe for P seconds first (its setup about 75 s) and starts the video stage from it:
# a shorter probe than call 25a's 240 s, for the floor's checkers (the next try; not run yet). DB=0: no student.
# env: P V W SS HH FF DB, END; DEVICE=cpu OUT=DIR P=0|5 V=5 SS=5 HH=5 FF=5 DB=5 SCENES=1
# FLAGS="--batch 2 --workers 1 --samples 64" PROBE_FLAGS="--bank 64 --samples 64" only to try it here
source benchmarks/device_calls/common.sh
P=${P:-0}; V=${V:-130}; W=${W:-0.5}; SS=${SS:-120}; HH=${HH:-80}; FF=${FF:-50}; DB=${DB:-50}
floor_video $P $V $W
train_further --init /tmp/A --arc-span 20,160 --stages syncam,hard,soft \
  --stage-budgets syncam=$SS,hard=$HH,soft=$FF $FLAGS
teacher_floors new /tmp/T --pictures /tmp/R/new.png
[ $DB -gt 0 ] || { echo "done at $(el) s"; exit 0; }
student_out /tmp/T assets/camgrid-tiny-4step-lora.safetensors $DB
echo "done at $(el) s"
