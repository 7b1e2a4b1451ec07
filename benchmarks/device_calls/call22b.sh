#!/bin/bash
# For the twenty-second session (issue 15: the floor), the second of three calls, after call22a.sh: its three model
# files in .gpu/B (carried). The normal video stage brings the objects (and the empty caption's meaning: guidance's
# negative) back, then the three sync stages with v8's recipe and arcs are trained on the new base; then the
# teacher's floors against v8.1's on the same held-out scenes. Returns the three model files: the third call is
# `SRC=.gpu/C bash benchmarks/device_calls/call17b.sh` with them and v8.1's student
# (assets/camgrid-tiny-4step-lora.safetensors) in .gpu/C: the student distilled from v8.1's, the 96-scene tables,
# and following, wide rigs and camera use against v8.1.
# env: VV SS HH FF (stage seconds), SCENES (held-out scenes measured), END; DEVICE=cpu only to try it here
source benchmarks/device_calls/common.sh
[ -f .gpu/B/camgrid-tiny.safetensors ] || { echo "call22b: .gpu/B holds no model files (call22a.sh's)"; exit 1; }
train_further --init .gpu/B --arc-span 20,160 --stages video,syncam,hard,soft \
  --stage-budgets video=${VV:-110},syncam=${SS:-90},hard=${HH:-140},soft=${FF:-70}
teacher_floors new /tmp/T
teacher_floors v81 assets
echo "done at $(el) s"
