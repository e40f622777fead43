#!/usr/bin/env bash
# 2026-12-01, nvidia-h200, call A: capture real torch-profiler runs of our own workloads at
# HEAD (before the speed-of-light / inventory work) so the analyses can be built and checked
# against them: calibrate; dense llama-3.1-8b L0, L0-L4, best bf16 (L0-L4,L5,L5-gemv), FP8
# stack; a ~100 MB HF MoE generate trace (trace-engine benchmark input); moe/full and
# gptoss/20b with the layers they take; ncu on the eager step. The whole
# home (sessions.db + runs/*) comes back in archives.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export AIPERF_HOME=/tmp/h; mkdir -p $AIPERF_HOME
L=$OUT/log.txt
finish() { (cd /tmp && tar czf $OUT/home_dense.tgz --exclude='*.ncu-rep' h/sessions.db h/ceilings.json $(cd /tmp && ls -d h/runs/* 2>/dev/null | head -4)) 2>/dev/null
  (cd /tmp && tar czf $OUT/home_rest.tgz $(cd /tmp && ls -d h/runs/* 2>/dev/null | tail -n +5) h/*.md) 2>/dev/null; ls -la $OUT >> $L; }
trap finish EXIT
START=$(date +%s)
t() { local l=$(( 565 - ($(date +%s) - START) )); [ $l -lt 5 ] && l=5; echo $(( $1 < l ? $1 : l )); }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw --format=csv | tee -a $L
T1=$(date +%s); timeout $(t 60) python3 -m workbench.cli calibrate > /tmp/h/calibrate.md 2>&1
echo "calibrate rc=$? $(( $(date +%s) - T1 )) s" | tee -a $L; tail -12 /tmp/h/calibrate.md | tee -a $L
run() { local tag=$1 lim=$2; shift 2; local T1=$(date +%s)
  timeout $(t $lim) python3 -m workbench.cli run --device cuda --label $tag --export /tmp/h/$tag.md "$@" > /tmp/h/$tag.log 2>&1
  echo "== $tag rc=$? $(( $(date +%s) - T1 )) s: $*" | tee -a $L; tail -3 /tmp/h/$tag.log | tee -a $L; }
D="--workload dense --preset llama-3.1-8b --profiler torch"
run dense_L0 90 $D --layers L0
run dense_best 150 $D --layers L0-L4,L5,L5-gemv
run dense_fp8 150 $D --layers L0-L4,L5,L5-fp8
T1=$(date +%s); timeout $(t 90) python3 benchmarks/capture_hf_moe_trace.py --out /tmp/hfmoe --target-mb 100 > /tmp/h/hfmoe.log 2>&1
echo "== hf moe capture rc=$? $(( $(date +%s) - T1 )) s" | tee -a $L; tail -3 /tmp/h/hfmoe.log | tee -a $L; cp /tmp/hfmoe/*.gz $OUT/ 2>/dev/null
run dense_L0-L4 70 $D --layers L0-L4
run moe_all 90 --workload moe --preset full --profiler torch --layers L0,L1,L5-moe-fp8,L6-moe-grouped
run gptoss_all 90 --workload gptoss --preset 20b --profiler torch --layers L0,L1,L6-moe-grouped
run dense_L0_ncu 60 --workload dense --preset llama-3.1-8b --profiler ncu --layers L0
echo "total $(( $(date +%s) - START )) s" | tee -a $L
