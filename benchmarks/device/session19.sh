#!/usr/bin/env bash
# 2026-12-01, nvidia-h200, call C (issue 15 Build 5 / Done-when 2): `--profiler ncu` with the
# default scope on every rung — eager L0, CUDA graphs L0-L4, compiled L0-L3+L5, the best bf16
# stack, the FP8 stack, moe/full and gptoss/20b with their layers — each timed as the user
# runs it (target <= 2 minutes), reports kept; then the decode-attention micro-benchmark.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export AIPERF_HOME=/tmp/hn; mkdir -p $AIPERF_HOME
R=/tmp/res19; mkdir -p $R; L=$R/log.txt
finish() { cp benchmarks/results/decode_attention-* $R/ 2>/dev/null
  (cd /tmp && tar czf $OUT/session19.tgz --exclude='*.ncu-rep' res19 hn/sessions.db hn/runs hn/*.md 2>/dev/null); cp $L $OUT/log.txt; }
trap finish EXIT
START=$(date +%s)
t() { local l=$(( 580 - ($(date +%s) - START) )); [ $l -lt 5 ] && l=5; echo $(( $1 < l ? $1 : l )); }
step() { local tag=$1 lim=$2; shift 2; local T1=$(date +%s)
  timeout $(t $lim) "$@" > $R/$tag.txt 2>&1
  echo "== $tag rc=$? $(( $(date +%s) - T1 )) s" | tee -a $L; tail -${TAIL:-4} $R/$tag.txt | tee -a $L; }
run() { local tag=$1 lim=$2; shift 2
  step $tag $lim python3 -m workbench.cli run --device cuda --profiler ncu --label $tag --export /tmp/hn/$tag.md "$@"; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw --format=csv | tee -a $L
D="--workload dense --preset llama-3.1-8b"
run ncu_L0 70 $D --layers L0
run ncu_L0-L4 70 $D --layers L0-L4
run ncu_L0-L3_L5 130 $D --layers L0-L3,L5
run ncu_fp8 130 $D --layers L0-L4,L5,L5-fp8
run ncu_moe 130 --workload moe --preset full --layers L0,L1,L5-moe-fp8,L6-moe-grouped
run ncu_gptoss 130 --workload gptoss --preset 20b --layers L0,L1,L6-moe-grouped
run ncu_best 130 $D --layers L0-L4,L5,L5-gemv
TAIL=14 step decode_attention 70 python3 benchmarks/decode_attention.py --contexts 128,2048,8192,32768 --batches 1 --fp8-contexts 8192
echo "total $(( $(date +%s) - START )) s" | tee -a $L
