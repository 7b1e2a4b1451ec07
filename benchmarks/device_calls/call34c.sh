#!/bin/bash
# Thirty-fourth session (issue 15). Call 34a ran v10's video stage with floor images 1,365 steps on close_aligned
# scenes (A). Asked for "floor" on empty rigs, A draws the aligned lattice almost as the truth does (view 0's frames
# 0.973 of an aligned bank, the truth 0.995; v10 0.687); in whole scenes it moved less (0.691 to 0.751; the truth
# 0.964). This call runs A's video stage V seconds further (B), the same recipe, and measures B's floors in whole
# scenes (syncam, v10's sync parts, 16 held-out close_aligned scenes) view by view: does the lattice keep rising
# with the steps, and in which views?
# Carry [".gpu/diffusers-0.42.1-py3-none-any.whl", ".gpu/A34"]: A34 is call 34a's A (its DiT and text files) with
# v10's sync file (assets/camgrid-tiny-sync.safetensors) beside them.
# Ran (thirty-fourth session): `END=330 V=220 bash benchmarks/device_calls/call34c.sh`, NVIDIA H100, 331 s: 764
# steps; the floors were cut by END (the video stage's setup took 57 s) and measured on the CPU instead
# (benchmarks/TINY_MODEL.md "Whole scenes on aligned rigs").
# env: V (video seconds), END; DEVICE=cpu OUT=DIR V=5 SCENES=2 FLAGS="--samples 64 --batch 4 --workers 2" only to
# try it
source benchmarks/device_calls/common.sh
for f in camgrid-tiny.safetensors camgrid-tiny-text-ae.safetensors camgrid-tiny-sync.safetensors; do
  [ -f .gpu/A34/$f ] || { echo "call34c: .gpu/A34/$f is missing (see the header)"; exit 1; }
done
V=${V:-200}
FLAGS="--scene-style close_aligned $FLAGS" floor_video 0 $V 0.5 .gpu/A34 /tmp/B
teacher_floors B /tmp/B --pictures /tmp/R/B.png
echo "done at $(el) s"
