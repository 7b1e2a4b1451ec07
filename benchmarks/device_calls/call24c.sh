#!/bin/bash
# Twenty-third session (issue 15: the floor), the third call, after call24b (call23b.sh from call 24a's arm F: the
# video stage with --image-weight 0.5 --image-source floor, 1,844 steps in all; its three model files in .gpu/B,
# carried). The video stage trains further with FLAGS (F's), then the three sync stages with v8's recipe and arcs
# on the new base (as call22b.sh); then the teacher's floors on the same held-out scenes as calls 23b, 24a and 24b.
# Returns the three model files: the next call is `SRC=.gpu/C bash benchmarks/device_calls/call17b.sh` with them
# and v8.1's student (assets/camgrid-tiny-4step-lora.safetensors) in .gpu/C (the student, the tables, following
# and wide rigs against v8.1).
# Ran once (NVIDIA H100, 515 s, VV 90): lattice 0.795 in whole scenes, 0.914 on the empty rigs asked for "floor"
# (truth 0.879, 0.909), object share 0.241; its views agree less than v8.1's (CPU tables on 24 scenes), so the sync
# stages want longer than 300 s on this base (benchmarks/TINY_MODEL.md "Floor images in the video stage").
# env: VV SS HH FF (stage seconds; VV by default what the others and the measures leave), FLAGS, EMPTY_FLAGS,
# SCENES, END;
# DEVICE=cpu OUT=DIR VV=5 SS=5 HH=5 FF=5 SCENES=1 FLAGS="--batch 2 --workers 1 --samples 64" only to try it here
source benchmarks/device_calls/common.sh
[ -f .gpu/B/camgrid-tiny.safetensors ] || { echo "call24c: .gpu/B holds no model files (call 24b's)"; exit 1; }
SS=${SS:-90}; HH=${HH:-140}; FF=${FF:-70}
VV=${VV:-$(( $(left) - SS - HH - FF - 110 ))}   # setup (about 20 s, floor frames 20) and two measures (about 30 s each)
train_further --init .gpu/B --arc-span 20,160 --stages video,syncam,hard,soft \
  --stage-budgets video=$VV,syncam=$SS,hard=$HH,soft=$FF $FLAGS
teacher_floors new /tmp/T --pictures /tmp/R/new.png
teacher_floors new_ind_empty /tmp/T --empty --mode independent --pictures /tmp/R/new_ind_empty.png $EMPTY_FLAGS
echo "done at $(el) s"
