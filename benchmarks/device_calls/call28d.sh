#!/bin/bash
# Twenty-seventh session (issue 15). Call 28c's model (the video stage with floor images from v8.1 without the
# floor probe, then the sync stages; its teacher's shapes judged right 0.962 against v8.1's 0.926, seed 0) with its
# student, in .gpu/A28 (carried): its 96-scene tables into /tmp/R/S in what is left of the call but 15 s, to
# compare with v8.1's (call 27a's R/V81) on the same views (python -m camgrid.train.same_views).
# Not run yet: eight starts failed in the twenty-seventh session, sixteen in the twenty-eighth, sixteen in the
# twenty-ninth (call29a.sh runs these tables, then the next floor try, in one call). About 200 s of tables give the
# rows teacher 20 steps, student 4 steps and the teacher's NVS (call 27b: 150 s).
# env: END; DEVICE=cpu OUT=DIR only to try it here
source benchmarks/device_calls/common.sh
[ -f .gpu/A28/camgrid-tiny-4step-lora.safetensors ] || { echo "call28d: .gpu/A28 lacks call 28c's files"; exit 1; }
tables96 .gpu/A28 $(( $(left) - 15 ))
echo "done at $(el) s"
