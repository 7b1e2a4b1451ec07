#!/bin/bash
# Thirty-third session (issue 15). Why does the tiny DiT draw the floor as gravel? One candidate: the floor is many
# pictures at once. The training rigs turn about the vertical by a uniform angle and aim near, not at, the origin,
# and the camera input is relative to view 0 (or absent, in independent mode and in the floor probe), so nothing
# tells the model which way the squares lie or where their corners fall: it must pick one of many lattices, and a
# small model trained by least squares draws their blur. With --align-floor every camera looks along a grid line
# over a checker corner (synth/dataset.random_rig align_floor), which leaves a smooth family of floors (height,
# distance, field of view) instead. Two arms of the floor probe from v10's base (tiny_floor_probe.py --init assets
# --style close), side by side on the one GPU for P seconds each, the same seed and steps between evaluations:
# R (the training floors as they are) and A (aligned). Each prints its lattice match every EVAL steps against the
# bank of random floors; A also against a bank of aligned ones (lattice_aligned), beside its truth's.
# Not run yet: the thirty-third session's device machine could not be started (eight tries). Its CPU pilots are in
# benchmarks/TINY_MODEL.md "Is the floor many floors at once?" (aligned: lattice 0.874 at 1,777 steps of batch 16;
# random: 0.750).
# Carry [".gpu/diffusers-0.42.1-py3-none-any.whl"].
# env: P EVAL, END; DEVICE=cpu OUT=DIR P=20 EVAL=10 FLAGS="--samples 128 --bank 256" only to try it
source benchmarks/device_calls/common.sh
P=${P:-300}; EVAL=${EVAL:-1000}
probe() { timeout $(left) python3 benchmarks/tiny_floor_probe.py --device ${DEVICE:-cuda} --style close --init assets \
  --budget $P --eval-every $EVAL --out /tmp/R/$1 "${@:2}" $FLAGS > /tmp/R/$1.txt 2>&1; echo "$1 rc=$? at $(el) s"; }
probe R & probe A --align-floor & wait
tail -n 20 /tmp/R/R.txt /tmp/R/A.txt
rm -f /tmp/R/*/samples_*.pt; pack
echo "done at $(el) s"
