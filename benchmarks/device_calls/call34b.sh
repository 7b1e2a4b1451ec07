#!/bin/bash
# Thirty-fourth session (issue 15). After call34a.sh: its DiT A (v10's video stage run further on close_aligned
# scenes, every rig's view 0 along a grid line) made a release candidate in one go, as call30b.sh did for v10: the
# three sync stages on A's DiT on close_aligned scenes (SS, HH, FF seconds, v10's budgets, v8's arcs of 20-160
# degrees), the teacher's floors on 16 held-out close_aligned scenes, its student distilled from v10's for DB
# seconds, then the 96-scene tables with what is left: the three model files and the student in $OUT, the tables in
# /tmp/R/S (tiny_release.py --student-files takes that folder).
# Carry [".gpu/diffusers-0.42.1-py3-none-any.whl", ".gpu/A34"]: A34 is call 34a's A (its DiT and text files, which
# record the style close_aligned) with v10's sync file (assets/camgrid-tiny-sync.safetensors) beside them; the
# student starts from v10's (assets/).
# Not run: A's whole-scene floors did not rise enough to make it a candidate (benchmarks/TINY_MODEL.md "Whole
# scenes on aligned rigs"); kept for an aligned DiT that does.
# env: SS HH FF DB TB, END; DEVICE=cpu OUT=DIR SS=5 HH=5 FF=5 DB=5 TB=5 SCENES=1 TABLE_SCENES=2
# FLAGS="--batch 2 --workers 1 --samples 64" only to try it here
source benchmarks/device_calls/common.sh
for f in camgrid-tiny.safetensors camgrid-tiny-text-ae.safetensors camgrid-tiny-sync.safetensors; do
  [ -f .gpu/A34/$f ] || { echo "call34b: .gpu/A34/$f is missing (see the header)"; exit 1; }
done
SS=${SS:-120}; HH=${HH:-80}; FF=${FF:-50}; DB=${DB:-100}; TB=${TB:-150}
train_further --init .gpu/A34 --scene-style close_aligned --arc-span 20,160 --stages syncam,hard,soft \
  --stage-budgets syncam=$SS,hard=$HH,soft=$FF $FLAGS
teacher_floors new /tmp/T --pictures /tmp/R/new.png
student_out /tmp/T assets/camgrid-tiny-4step-lora.safetensors $DB
tables_in_rest /tmp/T 20 $TB
echo "done at $(el) s"
