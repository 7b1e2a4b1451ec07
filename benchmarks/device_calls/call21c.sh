#!/bin/bash
# Twenty-first session (issue 15: the floor). Call 21a (call18d.sh, the floor probe alone for a whole call) showed
# that the DiT draws the lattice given the steps: on floors alone, from v8's weights, its lattice match
# (floor_lattice.py) rose 0.74 / 0.79 / 0.85 at 1,500 / 4,500 / 9,000 steps (truth 0.90; benchmarks/TINY_MODEL.md
# "The lattice, given the steps"). Whole scenes train the floor in the video stage (the base DiT; the syncam stage
# trains only its own parts). Does the video stage, run from v8 for most of a call, move the lattice of the
# model's floors too? It returns the three model files (the sync files unchanged), measured on the CPU with
# `tiny_floor_probe.py --shipped N --teacher --model DIR`, and the first leg of training the floor further
# (--init from them in a later call).
# env: V (video-stage seconds), END
source benchmarks/device_calls/common.sh
V=${V:-$(( $(left) - 90 ))}   # rendering the data, loading and saving take about 60 s
train_further --stages video --stage-budgets video=$V
echo "done at $(el) s"
