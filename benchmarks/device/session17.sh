#!/usr/bin/env bash
# Issue 20, MoE half (nvidia-h200, one call, <= 8 minutes): the MoE / gpt-oss decoders with
# every layer, measured through the CLI's front door.
#   1. GPU tests of the new paths: the fused Triton expert GEMV at gpt-oss 20b shapes (bf16,
#      FP8) against float64; graphed (L4) and compiled (L5) decode keeping parity with the
#      reference's routing replayed on the device; no host sync in the decode step
#      (set_sync_debug_mode "error"); compiled FlexAttention prefill with sinks and a window.
#   2. `aiperf-workbench ladder --workload moe --preset full`: L0; L0-L4; +L6-moe-grouped;
#      L0-L6 (all on). Target: all-on vs L0 >= 15x, parity ok on every row.
#   3. gpt-oss 20b rows (benchmarks/moe_ladder.py, the same run_ladder): decode batch 1 at L0
#      and all-on (L0-L6) with the share of the weight-bytes limit against the copy bandwidth
#      measured in the same run (target >= 70%), and the 8,192-token prefill (L0-L4 +
#      L6-moe-grouped: FlexAttention prefill, grouped GEMMs), parity on every row.
#   4. The expert-GEMV config sweep (benchmarks/moe_gemv.py) if time is left.
# Each step runs under `timeout` inside a 470 s budget; everything (the session home, the
# results JSON/Markdown, logs) comes back in one archive, $OUT/session17.tgz, and log.txt.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export AIPERF_HOME=/tmp/h; mkdir -p $AIPERF_HOME /tmp/res
L=/tmp/res/log.txt
finish() { ls -la /tmp/res >> $L
  (cd /tmp && tar czf $OUT/session17.tgz --exclude='trace.json.gz' h res) 2>/dev/null
  cp $L $OUT/log.txt; }
trap finish EXIT
START=$(date +%s)
t() { local l=$(( 470 - ($(date +%s) - START) )); [ $l -lt 5 ] && l=5; echo $(( $1 < l ? $1 : l )); }
step() { local tag=$1 lim=$2 tail=$3; shift 3; local T1=$(date +%s)
  timeout $(t $lim) "$@" > /tmp/res/$tag.log 2>&1
  echo "== $tag rc=$? $(( $(date +%s) - T1 )) s: $*" | tee -a $L
  tail -$tail /tmp/res/$tag.log | tee -a $L; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,power.draw --format=csv | tee -a $L
step gpu_tests 100 8 python3 -m pytest -q -m gpu -p no:cacheprovider \
  tests/unit/test_moe_decode_gpu.py tests/unit/test_moe_layers.py
step ladder_moe 190 16 python3 -m workbench.cli ladder --workload moe --preset full \
  --device cuda --layers-sets "L0;L0-L4;L0-L4,L6-moe-grouped;L0-L6" --param new_tokens=4 \
  --repeat 10 --warmup 3 --timeout 170 --export /tmp/res/ladder_moe.md
step gptoss 150 12 python3 benchmarks/moe_ladder.py --parts gptoss-decode,gptoss-prefill \
  --gptoss-decode-sets "L0;L0-L6" --gptoss-prefill-sets "L0-L4,L6-moe-grouped" \
  --new-tokens 4 --repeat 10 --timeout 140 --out-dir /tmp/res
step gemv_sweep 40 24 python3 benchmarks/moe_gemv.py --out /tmp/res
echo "total $(( $(date +%s) - START )) s" | tee -a $L
