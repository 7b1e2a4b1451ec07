#!/bin/bash
# Device calls of the fifteenth session (benchmarks/TINY_MODEL.md, v6). Run from the repository root on the device with
# `.gpu` carried: it holds the diffusers wheel (`pip download --no-deps diffusers==0.42.1 -d .gpu`) and the files the
# script names (callG: .gpu/teacherF = call F's teacher, .gpu/studentF.safetensors = its student; callH: .gpu/v5 = v5).
# Third device call (issue 15): v6 (assets/) against v5 (.gpu/v5): camera use, and the 4-step students' following in
# both view orders on two noise seeds.
T0=$(date +%s); END=${END:-400}
el() { echo $(( $(date +%s) - T0 )); }
left() { local l=$(( END - $(el) )); [ $l -lt 5 ] && l=5; echo $l; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/diffusers-*.whl || exit 1
mkdir -p /tmp/pp && ln -sfn "$PWD" /tmp/pp/camgrid
export PYTHONPATH=/tmp/site:/tmp/pp PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader
run() { local n=$1; shift; timeout $(left) "$@" > $OUT/$n.txt 2>&1; echo "$n at $(el) s"; tail -8 $OUT/$n.txt; }
for s in 0 1; do for o in preset reversed; do
  run student_s${s}_$o python3 benchmarks/tiny_follow_cameras.py assets .gpu/v5 --modes syncam --scenes 32 --student \
    --source-noise 0.5 --device cuda --seed $s --view-order $o
done; done
run camera_use python3 benchmarks/tiny_camera_use.py assets .gpu/v5 --scenes 24 --device cuda
echo "done at $(el) s"
