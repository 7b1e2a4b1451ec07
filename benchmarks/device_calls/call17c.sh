#!/bin/bash
# Seventeenth session, written for the next device call (issue 15: the floor; not run: no machine was lent).
# "The floor alone" (benchmarks/TINY_MODEL.md) found that the DiT learns the floor when it sees floors alone. So v7
# (assets/) trains further with a share of empty scenes (the floor alone, empty caption) in every stage: the
# single-view stage that draws the scene, then the three sync stages as v7 had them. Returns the three model files
# and, against v7's teacher on the same held-out scenes, the floors' eta in whole scenes (tiny_floor_probe.py
# --shipped; on 8 scenes here v7's teacher 0.750, the truth 0.828) and following a given view 0 in syncam.
# env: P (the empty share), V S H F (stage seconds), END
source benchmarks/device_calls/common.sh
P=${P:-0.25}; V=${V:-200}; S=${S:-120}; H=${H:-80}; F=${F:-40}
train_further --arc-span 20,160 --empty-scene-share $P --stages video,syncam,hard,soft \
  --stage-budgets video=$V,syncam=$S,hard=$H,soft=$F
run floor_new python3 benchmarks/tiny_floor_probe.py --shipped 24 --teacher --model /tmp/T
run floor_v7 python3 benchmarks/tiny_floor_probe.py --shipped 24 --teacher
TAIL=8 run follow python3 benchmarks/tiny_follow_cameras.py /tmp/T assets --modes syncam --scenes 32 \
  --source-noise 0.5 --device cuda
echo "done at $(el) s"
