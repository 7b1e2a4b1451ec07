#!/bin/bash
# Eighteenth session (issue 15: the floor). On the 2-core CPU the floor probe (tiny_floor_probe.py) reached only
# light and dark camouflage patches, not checker squares, in about 1,000 steps, whatever its eta said. Here the
# same probe trains for the whole call on the GPU (many times the CPU's steps: the model is small), four runs side
# by side: the close style of the shipped model from its weights and from scratch, the standard style from its
# weights, and 4x4 pixel squares from scratch. Does the DiT ever draw the lattice, given the steps? Returns each
# run's JSON lines and its samples.png (truth, round trip, then the samples at every evaluation).
# On an NVIDIA H100 one run makes about 20 steps a second (call 20c, benchmarks/TINY_MODEL.md "v8"): a whole call
# gives one run about 9,000 steps, so PROBES=close_assets (or two runs) asks the question with the most steps.
# Call 21a ran `PROBES=close_assets EVAL=1500 END=570`: 10,090 steps, and the lattice appears (its lattice match
# 0.749 at 1,500 steps, 0.839 at 10,090, truth 0.870; TINY_MODEL.md "The lattice, given the steps").
# env: EVAL (steps between evaluations), END, PROBES (which of the four runs, by name; default all); DEVICE and
# SAMPLES only to try it on a CPU
source benchmarks/device_calls/common.sh
EVAL=${EVAL:-1500}; B=$(( $(left) - 100 ))
probe() { local n=$1; shift; mkdir -p /tmp/F/$n
  timeout $(left) python3 benchmarks/tiny_floor_probe.py --device ${DEVICE:-cuda} --budget $B --eval-every $EVAL \
    --samples ${SAMPLES:-8192} --out /tmp/F/$n "$@" > /tmp/R/$n.txt 2>&1
  echo "$n rc=$? at $(el) s"; tail -3 /tmp/R/$n.txt; }
declare -A ARGS=([close_assets]="--style close --init assets" [close_scratch]="--style close --init scratch"
  [standard_assets]="--style standard --init assets" [close_pixels]="--style close --space pixels")
for n in ${PROBES:-close_assets close_scratch standard_assets close_pixels}; do probe $n ${ARGS[$n]} & done
wait
for run in /tmp/F/*; do cp $run/samples.png /tmp/R/$(basename $run).png; done
pack
echo "done at $(el) s"
