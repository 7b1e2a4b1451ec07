#!/bin/bash
# Twenty-first session, the budget's rest (issue 15: the floor). Floors alone draw the lattice after about 10,000
# steps of the probe (call 21a), and the video stage's whole scenes move it slowly (call 21c). A pilot of a floor
# stage inside the trainer: v8's video stage from assets/ with 0.9 of the scenes empty (the floor alone, empty
# caption) at batch 4 (16 single-view clips a step, near the probe's 64 frames), so it makes many more steps a
# second than the recipe's 384 clips. How many steps a second, and does the lattice of the teacher's floors move
# like the probe's? Returns the three model files, measured on the CPU with `tiny_floor_probe.py --shipped N
# --teacher --model DIR [--empty]` (TINY_MODEL.md "The lattice, given the steps").
# env: V (video-stage seconds), END
source benchmarks/device_calls/common.sh
V=${V:-$(( $(left) - 60 ))}   # rendering the first scenes, loading and saving
train_further --stages video --stage-budgets video=$V --empty-scene-share 0.9 --batch 4
echo "done at $(el) s"
