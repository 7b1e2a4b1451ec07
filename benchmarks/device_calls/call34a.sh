#!/bin/bash
# Thirty-fourth session (issue 15). Whole scenes on aligned rigs: does the floor keep its squares when every
# training rig's view 0 looks along a grid line (scene style close_aligned, synth/scenes.py)? The floor probe drew
# the lattice on aligned floors within 800-1,800 CPU steps and stayed at camouflage on the random ones
# (benchmarks/TINY_MODEL.md "Is the floor many floors at once?"). Here v10's video stage, with its floor images
# (--image-weight 0.5 --image-source floor, as v10 trained), runs V seconds more on close_aligned scenes (the
# floor images aligned too), from v10 (assets/). Then the floors of the 20-step teacher (syncam, v10's sync parts)
# on 16 held-out close_aligned scenes: lattice match against random floors (v10's measure) and against aligned
# ones, object share. v10 itself is measured first on the same scenes, the baseline.
# Carry [".gpu/diffusers-0.42.1-py3-none-any.whl"].
# Ran (thirty-fourth session): `END=585 V=330 bash benchmarks/device_calls/call34a.sh`, NVIDIA H100, 481 s: 1,365
# steps; syncam lattice 0.773 -> 0.781, view 0 against aligned floors 0.691 -> 0.751, objects 0.246 -> 0.279
# (benchmarks/TINY_MODEL.md "Whole scenes on aligned rigs"). Six tries to start a machine failed before it.
# env: V (video seconds), END; DEVICE=cpu OUT=DIR V=5 SCENES=2 FLAGS="--samples 64 --batch 4 --workers 2" only to
# try it
source benchmarks/device_calls/common.sh
V=${V:-330}
teacher_floors v10 assets --scenes-style close_aligned --pictures /tmp/R/v10.png
FLAGS="--scene-style close_aligned $FLAGS" floor_video 0 $V 0.5 assets /tmp/A
teacher_floors A /tmp/A --pictures /tmp/R/A.png
echo "done at $(el) s"
