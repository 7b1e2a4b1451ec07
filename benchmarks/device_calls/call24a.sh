#!/bin/bash
# Twenty-third session (issue 15: the floor), from call 23a's files (.gpu/B, carried: v8.1 with the floor probe's
# base DiT, which draws the lattice but forgot the objects). Two arms of the recipe's video stage, V seconds each,
# each measured as call 23b's first segment was (1,193 steps in 204 s from the same files: lattice 0.775 in whole
# scenes, 0.766 on empty rigs, object share 0.216; truth 0.879, 0.909, 0.125):
#   F  --image-weight 0.5 --image-source floor: half the loss from single frames of the floor alone, captioned
#      "floor" (train/floor_images.py), which is what taught the probe the lattice;
#   L  --lr 1e-4: clips alone at a quarter of the learning rate, staying nearer the floor-trained weights.
# Returns each arm's three model files in $OUT/F and $OUT/L, the floors and pictures in results.tar.
# Ran once (NVIDIA H200, 510 s, V 169): F 700 steps, lattice 0.795 in whole scenes, object share 0.261; L 1,240 steps,
# 0.779 and 0.246 (benchmarks/TINY_MODEL.md "Floor images in the video stage"). Call 24b continued F.
# env: V (seconds per arm), FLAGS (more trainer flags for both arms), SCENES, END; DEVICE=cpu OUT=DIR V=10 SCENES=1
# FLAGS="--batch 2 --workers 1 --samples 64" only to try it here
source benchmarks/device_calls/common.sh
[ -f .gpu/B/camgrid-tiny.safetensors ] || { echo "call24a: .gpu/B holds no model files (call23a.sh's)"; exit 1; }
V=${V:-$(( ($(left) - 230) / 2 ))}   # per arm: setup (about 20 s, the floor frames 20 more) and two measures
arm() { local name=$1; shift
  train_further --init .gpu/B --stages video --stage-budgets video=$V "$@" $FLAGS
  mkdir -p $OUT/$name && mv $OUT/camgrid-tiny*.safetensors $OUT/$name/
  mv /tmp/R/loss.csv /tmp/R/loss_$name.csv; mv /tmp/R/train.txt /tmp/R/train_$name.txt
  teacher_floors $name /tmp/T --pictures /tmp/R/$name.png
  teacher_floors ${name}_ind_empty /tmp/T --empty --mode independent --pictures /tmp/R/${name}_ind_empty.png
  rm -rf /tmp/T; }
arm F --image-weight 0.5 --image-source floor
arm L --lr 1e-4
echo "done at $(el) s"
