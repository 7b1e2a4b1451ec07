#!/bin/bash
# Twenty-sixth session (issue 15): call 26b's teacher (the sync stages on call 25a's floor base; its three files in
# $SRC, default .gpu/B26, with v8.1's student beside them) gets its student and its 96-scene tables, and v8.1 its
# own 96-scene rows on the same device, scenes and noise, so that the two compare on the same views afterwards
# (`python -m camgrid.train.same_views V81 S`; the tables keep every grid's detections).
# 1. the student distilled for DB seconds from v8.1's, and the 96-scene tables into /tmp/R/S (student_and_tables;
#    /tmp/R/S is what tiny_release.py --student-files takes);
# 2. v8.1's 96-scene rows into /tmp/R/V81.
# Returns the student in $OUT and the rest in results.tgz.* (its results.tar, 60 MB, did not come back: common.sh
# packs in pieces since).
# Ran once (NVIDIA H100, 438 s wall, END=580): the student 897 steps in 93 s; both tables complete. On the same
# views call 26b's teacher's syncam agrees a little less than v8.1's (0.93 against 0.88 px, lower in 20 of 67
# scenes, p = 0.002), so call27b.sh trained its sync stages further.
# env: SRC, DB (seconds), END; DEVICE=cpu DB=5 TABLE_FLAGS="--scenes 2 --workers 0" only to try it here
source benchmarks/device_calls/common.sh
SRC=${SRC:-.gpu/B26}; DB=${DB:-150}
[ -f $SRC/camgrid-tiny.safetensors ] || { echo "call27a: $SRC holds no model files"; exit 1; }
rm -rf /tmp/B26 && cp -r $SRC /tmp/B26 && chmod -R u+w /tmp/B26
student_and_tables /tmp/B26 assets/camgrid-tiny-4step-lora.safetensors $DB 110
cp /tmp/R/S/camgrid-tiny-4step-lora.safetensors $OUT/
TAIL=3 run v81 python3 -m camgrid.train.tables --model assets --out /tmp/R/V81 --scenes 96 --budget $(( $(left) - 25 )) \
  --source-noise 0.5 --device ${DEVICE:-cuda} $TABLE_FLAGS
echo "done at $(el) s"
