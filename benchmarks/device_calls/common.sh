# Sourced by the device-call scripts from the sixteenth session on (callX.sh, callY.sh, callZ.sh; callW.sh), from
# the repository root on the device with `.gpu` carried: it holds the diffusers wheel (`pip download --no-deps
# diffusers==0.42.1 -d .gpu`).
# Gives: T0 and END (seconds the script may use), el (seconds since the start), left (seconds left, at least 5),
# diffusers on the path, this checkout importable as `camgrid`, pack (everything under /tmp/R, gzipped, into
# $OUT/results.tgz.00, .01, ...: no file over 16 MiB comes back, and one tables run's detections.pt is 26 MB;
# unpack with `cat results.tgz.* | tar -xz`; at most 8 files come back from $OUT), run NAME CMD... (CMD's output
# into /tmp/R/NAME.txt within the time left, its tail, then pack), train_further and student_and_tables (below).
T0=$(date +%s); END=${END:-585}
el() { echo $(( $(date +%s) - T0 )); }
left() { local l=$(( END - $(el) )); [ $l -lt 5 ] && l=5; echo $l; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/diffusers-*.whl || exit 1
mkdir -p /tmp/pp /tmp/R && ln -sfn "$PWD" /tmp/pp/camgrid
export PYTHONPATH=/tmp/site:/tmp/pp PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader
pack() { rm -f $OUT/results.tar $OUT/results.tgz.*
  (cd /tmp && tar -czf - R) | split -b 15M -d - $OUT/results.tgz.; }
run() { local n=$1; shift; timeout $(left) "$@" > /tmp/R/$n.txt 2>&1; echo "$n rc=$? at $(el) s"
  tail -${TAIL:-8} /tmp/R/$n.txt; pack; }
# train_further FLAGS...: assets/ (or FLAGS' --init DIR) trained further into /tmp/T with v7's recipe (call X:
# rays, relative cameras, given views, shuffled views; FLAGS add the arcs, stages and budgets), then the three
# model files into $OUT and the loss log into the results (DEVICE=cpu only to try a script here); TDIR=DIR trains
# into DIR instead and copies into $OUT/DIR's name, the log into /tmp/R/DIR's name (several arms in one call)
train_further() { local t=${TDIR:-/tmp/T} o=$OUT r=/tmp/R
  [ -n "$TDIR" ] && o=$OUT/$(basename $TDIR) r=/tmp/R/$(basename $TDIR)
  mkdir -p $t $o $r
  run train${TDIR:+_$(basename $TDIR)} python3 -m camgrid train --init assets --device ${DEVICE:-cuda} --out $t \
    --workers 13 --samples 30000 --batch 96 --lr 4e-4 --ema 0.998 --camera-rays --relative-cameras \
    --given-view-share 0.5 --view-order shuffled --checkpoint-every 100000 --no-progress "$@"
  cp $t/camgrid-tiny.safetensors $t/camgrid-tiny-sync.safetensors $t/camgrid-tiny-text-ae.safetensors $o/
  cp $t/loss.csv $t/progress.json $r/ 2>/dev/null; pack; }
# student MODEL INIT DB: MODEL's student distilled further from the LoRA file INIT for DB seconds into /tmp/R/S and
# copied into MODEL (every tables row after it measures this student)
student() { local model=$1 init=$2 db=$3; mkdir -p /tmp/R/S
  run distill python3 -m camgrid.train.distill --model $model --out /tmp/R/S --budget $db --init-student $init
  cp /tmp/R/S/camgrid-tiny-4step-lora.safetensors $model/ || exit 1; }
# tables96 MODEL BUDGET: MODEL's 96-scene tables into /tmp/R/S, rows started within BUDGET seconds (/tmp/R/S is what
# tiny_release.py --student-files takes; same_views compares two such folders; TABLE_SCENES=N only to try a script)
tables96() { mkdir -p /tmp/R/S
  run tables python3 -m camgrid.train.tables --model $1 --out /tmp/R/S --scenes ${TABLE_SCENES:-96} --budget $2 \
    --source-noise 0.5 --device ${DEVICE:-cuda}; }
# student_out MODEL INIT DB: student, then the new LoRA into $OUT and out of /tmp/R/S, so it comes back even if a later
# step runs out of time, and the results' archive does not carry it twice
student_out() { student $1 $2 $3
  cp $1/camgrid-tiny-4step-lora.safetensors $OUT/
  rm -f /tmp/R/S/camgrid-tiny-4step-lora.safetensors; pack; }
# tables_in_rest MODEL RESERVE [CAP]: tables96 with rows started within what is left but RESERVE seconds, at most CAP
# (default 150)
tables_in_rest() { local b=$(( $(left) - $2 )) cap=${3:-150}; [ $b -gt $cap ] && b=$cap
  tables96 $1 $b; }
# student_and_tables MODEL INIT DB RESERVE: student, then tables_in_rest MODEL RESERVE
student_and_tables() { student $1 $2 $3
  tables_in_rest $1 $4; }
# teacher_floors NAME DIR [FLAGS]: the floors of DIR's 20-step teacher on SCENES held-out scenes (default 16):
# lattice match, eta and object share (tiny_floor_probe.py --shipped; FLAGS e.g. --empty)
teacher_floors() { TAIL=1 run floor_$1 python3 benchmarks/tiny_floor_probe.py --shipped ${SCENES:-16} --teacher \
  --device ${DEVICE:-cuda} --model "${@:2}"; }
# floor_video P V W [INIT [DIR]]: the video stage with floor images (--image-weight W --image-source floor) for V
# seconds into DIR (default /tmp/A), from INIT (default assets/, v8.1 when written) or, with P > 0, from P seconds of
# call 25a's floor probe on assets/ (its setup about 75 s); the DiT and text files into $OUT/<DIR's name> (the sync
# file is INIT's, left out: at most 8 files come back)
floor_video() { local init=${4:-assets} dir=${5:-/tmp/A}
  if [ $1 -gt 0 ]; then
    mkdir -p /tmp/T0; init=/tmp/T0
    run probe python3 benchmarks/tiny_floor_probe.py --device ${DEVICE:-cuda} --style close --init assets \
      --budget $1 --eval-every 100000 --save-model /tmp/T0 $PROBE_FLAGS
  fi
  TDIR=$dir train_further --init $init --stages video --stage-budgets video=$2 --image-weight $3 \
    --image-source floor $FLAGS
  rm -f $OUT/$(basename $dir)/camgrid-tiny-sync.safetensors; }
