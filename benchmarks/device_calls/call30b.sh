#!/bin/bash
# Thirty-first session (issue 15). Call 30a ran call 28c's video stage with floor images from v9 for 929 steps (A)
# and 871 more (B): the teacher's lattice match rose from v9's 0.766 to 0.777 and 0.783 (truth 0.879), the objects
# grew from 0.251 to 0.270 and 0.281 of the frame (truth 0.125), and the shapes held: 0.942 (A, n=208) and 0.954
# (B, n=238) judged right in independent mode (v8.1 0.925, call 28c's DiT 0.911; benchmarks/TINY_MODEL.md
# "Call 30a"). This call makes B a release candidate in one go: the three sync stages on B's DiT (SS, HH, FF
# seconds, call 28c's budgets), the teacher's floors, its student distilled from v9's for DB seconds, then the
# 96-scene tables with what is left (v9's took 141 s): the three model files and the student in $OUT, the tables
# in /tmp/R/S (tiny_release.py --student-files takes that folder).
# Carry [".gpu/diffusers-0.42.1-py3-none-any.whl", ".gpu/B30"] (all of .gpu with the tree is over 64 MiB): B30 is
# call 30a's B (its DiT and text files) with v9's sync file (assets/camgrid-tiny-sync.safetensors) beside them; the
# student starts from v9's (assets/). Without call 30a's files run call30a.sh first.
# Ran (thirty-second session): `END=585 bash benchmarks/device_calls/call30b.sh`, NVIDIA H100, 479 s: syncam 648
# steps, hard 187, soft 266, floors lattice 0.773 / objects 0.246 (16 scenes), student 266 steps, tables in 134 s
# (benchmarks/TINY_MODEL.md "v10"). assets/ held v9 then (the student's starting point); v10 has replaced it, so
# to run this again, restore v9's student from commit 3c1e472 first.
# env: SS HH FF DB TB, END; DEVICE=cpu OUT=DIR SS=5 HH=5 FF=5 DB=5 TB=5 SCENES=1 TABLE_SCENES=2
# FLAGS="--batch 2 --workers 1 --samples 64" only to try it here
source benchmarks/device_calls/common.sh
for f in camgrid-tiny.safetensors camgrid-tiny-text-ae.safetensors camgrid-tiny-sync.safetensors; do
  [ -f .gpu/B30/$f ] || { echo "call30b: .gpu/B30/$f is missing (see the header)"; exit 1; }
done
SS=${SS:-120}; HH=${HH:-80}; FF=${FF:-50}; DB=${DB:-50}; TB=${TB:-150}
train_further --init .gpu/B30 --arc-span 20,160 --stages syncam,hard,soft \
  --stage-budgets syncam=$SS,hard=$HH,soft=$FF $FLAGS
teacher_floors new /tmp/T --pictures /tmp/R/new.png
student_out /tmp/T assets/camgrid-tiny-4step-lora.safetensors $DB
tables_in_rest /tmp/T 20 $TB
echo "done at $(el) s"
