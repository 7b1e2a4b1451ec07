#!/bin/bash
# For the twenty-second session (issue 15: the floor), the first of three calls. The floor probe draws the lattice
# after about 10,000 steps on floors alone (call 21a), but the trainer made only 7.5 steps a second at batch 4
# (call 21d), perhaps because its main process takes in and encodes every sample its rendering workers finish
# (TINY_MODEL.md "The lattice, given the steps"). Here: v8.1's video stage with most scenes empty (the floor alone)
# at a small batch, with a bank of SAMPLES the workers fill early, so that the pool closes and the steps run at the
# model's own rate. The loss log says the steps a second; then the teacher's floors (lattice match, eta, object
# share) on the same held-out scenes, against v8.1's on the GPU. Returns the three model files: the next call
# (call22b.sh) brings the objects back from them with the normal video stage and trains the sync stages.
# ROUTE=probe instead trains the base DiT with the floor probe's own loop (floors alone, one frame, batch 64, the
# empty caption; tiny_floor_probe.py --save-model), for when the trainer's rate stays low.
# env: V (training seconds), P (empty share), BATCH, SAMPLES, ROUTE (trainer or probe), SCENES (held-out scenes
# measured), END; DEVICE=cpu only to try it here
source benchmarks/device_calls/common.sh
if [ "${ROUTE:-trainer}" = probe ]; then   # the floor probe's own loop (21 steps a second in call 21a)
  V=${V:-$(( $(left) - 260 ))}   # its setup (rendering its floors and bank, about 75 s) and the measures below
  mkdir -p /tmp/T
  run probe python3 benchmarks/tiny_floor_probe.py --device ${DEVICE:-cuda} --style close --init assets \
    --budget $V --eval-every 3000 --save-model /tmp/T
  cp /tmp/T/camgrid-tiny*.safetensors $OUT/
else
  V=${V:-$(( $(left) - 190 ))}   # the trainer's setup (about 20 s) and the measures below (about 140 s)
  train_further --stages video --stage-budgets video=$V --empty-scene-share ${P:-0.9} --batch ${BATCH:-4} \
    --samples ${SAMPLES:-3000}
fi
teacher_floors new /tmp/T
teacher_floors new_empty /tmp/T --empty
teacher_floors v81 assets
teacher_floors v81_empty assets --empty
echo "done at $(el) s"
