#!/bin/bash
# Twentieth session (issue 15): call18d.sh and call17b.sh in one call, because device starts keep failing (two
# more this session) and each start costs 90-230 s. The floor probe runs two of its four runs (close style from
# v7's weights and from scratch: does the lattice come with steps?) in the background while call 17a's release
# checks run in the foreground; the GPU is shared, so each gets fewer steps than alone (the probe's JSON lines
# give its steps). Results: /tmp/R as each script leaves it (floor_*.txt/png, S/, the rows' tails).
# env: END
source benchmarks/device_calls/common.sh
PROBES="close_assets close_scratch" EVAL=${EVAL:-1000} END=$(( END - 20 )) \
  bash benchmarks/device_calls/call18d.sh > /tmp/R/floor.txt 2>&1 &
END=$END bash benchmarks/device_calls/call17b.sh
wait
pack
echo "done at $(el) s"
