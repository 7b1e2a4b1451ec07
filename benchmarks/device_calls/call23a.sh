#!/bin/bash
# Twenty-second session (issue 15: the floor). Call 22a's floor stage inside the trainer (0.9 of the clips empty,
# 5,465 steps at 14 a second once the bank was full) left the lattice where it was: 0.752 on empty rigs against
# v8.1's 0.741 (truth 0.909), where the floor probe on single frames reached 0.800 by 6,000 steps (call 21a).
# Here the probe's own loop (single frames, constant learning rate) from v8.1's base, saved as a model folder
# (tiny_floor_probe.py --save-model), and then that base's 17-frame clips from the 20-step teacher on the empty
# held-out rigs, in mode independent (the base DiT alone) and syncam, and on whole scenes: does a floor learned on
# frames carry over to video? Returns the three model files and, in results.tar, the probe's samples.png and the
# pictures.
# env: V (probe seconds), SCENES, END; DEVICE=cpu only to try it here
source benchmarks/device_calls/common.sh
V=${V:-$(( $(left) - 230 ))}   # the probe's setup (rendering its floors and bank, about 75 s) and three measures
mkdir -p /tmp/T
run probe python3 benchmarks/tiny_floor_probe.py --device ${DEVICE:-cuda} --style close --init assets \
  --budget $V --eval-every 2000 --save-model /tmp/T --out /tmp/P
cp /tmp/P/samples.png /tmp/R/probe_samples.png; pack   # not its samples' tensors: results.tar came back too large
cp /tmp/T/camgrid-tiny*.safetensors $OUT/
teacher_floors new_ind_empty /tmp/T --empty --mode independent --pictures /tmp/R/new_ind_empty.png
teacher_floors new_syncam_empty /tmp/T --empty --pictures /tmp/R/new_syncam_empty.png
teacher_floors new /tmp/T --pictures /tmp/R/new.png
echo "done at $(el) s"
