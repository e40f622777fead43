#!/usr/bin/env bash
# 2026-12-01, nvidia-h200, call B (issues 15 and 20): after the inventory, roofline/budget and
# decode-kernel merges. 1) the decode kernels' GPU tests; 2) dense llama-3.1-8b under
# --profiler torch at L0, L0-L4, the best bf16 stack with the new split-KV decode attention and
# with the old SDPA one (param decode_kernel=sdpa: the gap the budget should name), and the FP8
# stack — each stores its operation inventory; reports are re-rendered from the stored sessions
# after the analysis merges; 3) the ladder rows of issue 20's targets with what time is left.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export AIPERF_HOME=/tmp/h; mkdir -p $AIPERF_HOME
R=/tmp/res18; mkdir -p $R; L=$R/log.txt
finish() { for d in /tmp/ladA; do [ -d $d ] && cp -r $d $R/; done
  (cd /tmp && tar czf $OUT/session18.tgz res18 h/sessions.db h/ceilings.json h/runs h/*.md 2>/dev/null); cp $L $OUT/log.txt; }
trap finish EXIT
START=$(date +%s)
t() { local l=$(( 575 - ($(date +%s) - START) )); [ $l -lt 5 ] && l=5; echo $(( $1 < l ? $1 : l )); }
step() { local tag=$1 lim=$2; shift 2; local T1=$(date +%s)
  timeout $(t $lim) "$@" > $R/$tag.txt 2>&1
  echo "== $tag rc=$? $(( $(date +%s) - T1 )) s" | tee -a $L; tail -${TAIL:-4} $R/$tag.txt | tee -a $L; }
run() { local tag=$1 lim=$2; shift 2
  step $tag $lim python3 -m workbench.cli run --device cuda --label $tag --export /tmp/h/$tag.md "$@"; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw --format=csv | tee -a $L
step calibrate 40 python3 -m workbench.cli calibrate
TAIL=6 step tests_kernels 90 python3 -m pytest -q -m gpu -p no:cacheprovider -rf tests/unit/test_decode_kernels_gpu.py -k "not decoder and not serves"
D="--workload dense --preset llama-3.1-8b --profiler torch"
run dense_L0 60 $D --layers L0
run dense_L0-L4 45 $D --layers L0-L4
run dense_best 130 $D --layers L0-L4,L5,L5-gemv
run dense_best_sdpa 110 $D --layers L0-L4,L5,L5-gemv --param decode_kernel=sdpa
run dense_fp8 120 $D --layers L0-L4,L5,L5-fp8
TAIL=16 step ladder_targets 170 python3 benchmarks/dense_ladder.py --skip decode,prefill --contexts 128,8192 --batches 1 --repeat 10 --grid-stacks "L0-L4,L5-gemv;L0-L4,L5-fp8" --out-dir /tmp/ladA
echo "total $(( $(date +%s) - START )) s" | tee -a $L
