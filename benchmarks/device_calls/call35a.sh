#!/bin/bash
# Thirty-fifth session (issue 15). Call 34c's DiT B (v10's video stage run 2,129 steps on close_aligned scenes, with
# floor images) draws the aligned lattice when asked for "floor". Composed into its guidance on the background only
# (model/sampling.py "composed": weight CW on every step, on the background only below sigma BG, background where
# the word's prediction is within TAU times the frame's median difference of the caption's), the lattice comes into
# whole scenes and the objects stay solid (this CPU, v10's sync parts: lattice 0.877, the truth 0.886; objects
# 0.153). This call makes it a release candidate, as call30b.sh did for v10:
#  1. the three sync stages on B on close_aligned scenes (SS, HH, FF seconds, v10's budgets, v8's arcs of 20-160
#     degrees) into /tmp/T, its three files into $OUT;
#  2. the composing written into its files (`camgrid.train.floor_word --seconds 0`, /tmp/C; its text file, the only
#     one that changes, into $OUT), the teacher's floors on 16 held-out close_aligned scenes;
#  3. its student distilled from v10's for DB seconds with the composed guidance baked in (into $OUT);
#  4. the 96-scene tables with what is left (/tmp/R/S, which tiny_release.py --student-files takes).
# DB=0 leaves out 3 and 4.
# Ran (thirty-fifth session): `END=420 DB=0 bash benchmarks/device_calls/call35a.sh`, NVIDIA H200, 337 s: steps 1-2
# (C; benchmarks/TINY_MODEL.md "The floor composed on the background only"). Steps 3-4 on C: call35b.sh.
# Carry [".gpu/diffusers-0.42.1-py3-none-any.whl", ".gpu/B34"]: B34 is call 34c's B (its DiT and text files, which
# record the style close_aligned) with v10's sync file (assets/camgrid-tiny-sync.safetensors) beside them.
# env: SS HH FF CW BG TAU DB, END; DEVICE=cpu OUT=DIR SS=5 HH=5 FF=5 DB=5 SCENES=1 TABLE_SCENES=2
# FLAGS="--batch 2 --workers 1 --samples 64" only to try it here
source benchmarks/device_calls/common.sh
for f in camgrid-tiny.safetensors camgrid-tiny-text-ae.safetensors camgrid-tiny-sync.safetensors; do
  [ -f .gpu/B34/$f ] || { echo "call35a: .gpu/B34/$f is missing (see the header)"; exit 1; }
done
SS=${SS:-120}; HH=${HH:-80}; FF=${FF:-50}; CW=${CW:-1}; BG=${BG:-0.8}; TAU=${TAU:-3}; DB=${DB:-100}
train_further --init .gpu/B34 --scene-style close_aligned --arc-span 20,160 --stages syncam,hard,soft \
  --stage-budgets syncam=$SS,hard=$HH,soft=$FF $FLAGS
run compose python3 -m camgrid.train.floor_word --model /tmp/T --out /tmp/C --seconds 0 --compose-cfg $CW \
  --compose-background-sigma $BG --compose-background-tau $TAU --device ${DEVICE:-cuda}
cp /tmp/C/camgrid-tiny-text-ae.safetensors $OUT/ || exit 1
teacher_floors composed /tmp/C --pictures /tmp/R/composed.png
if [ "$DB" -gt 0 ]; then   # DB=0: the sync stages, the composing and the floors only
  student_out /tmp/C assets/camgrid-tiny-4step-lora.safetensors $DB
  tables_in_rest /tmp/C 10 150
fi
echo "done at $(el) s"
