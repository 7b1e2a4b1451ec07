#!/bin/bash
# Seventeenth session, first device call (issue 15: hard and soft, given a view, place objects worse than a copy).
# v7 (assets/) trained further on the three sync stages with the two-stream stages given longer than call X gave
# them (hard 60 s, soft 30 s there), the arcs and flags of call X, then a first student from v7's. Returns the
# teacher's three model files and the student (call17b.sh distils it further and measures both against v7).
# env: S H F (stage seconds), SPAN (the training arcs), DB (distillation seconds), END
source benchmarks/device_calls/common.sh
S=${S:-120}; H=${H:-200}; F=${F:-100}; SPAN=${SPAN:-20,160}
train_further --arc-span $SPAN --stages syncam,hard,soft --stage-budgets syncam=$S,hard=$H,soft=$F
DB=${DB:-$(( $(left) - 15 ))}
run distill python3 -m camgrid.train.distill --model /tmp/T --out /tmp/T --budget $DB \
  --init-student assets/camgrid-tiny-4step-lora.safetensors
cp /tmp/T/camgrid-tiny-4step-lora.safetensors $OUT/ 2>/dev/null
echo "done at $(el) s"
