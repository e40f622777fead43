#!/usr/bin/env bash
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
L=$OUT/log.txt; H=/tmp/h3
T1=$(date +%s)
timeout 200 python3 -m workbench.cli --home $H run --workload dense --preset llama-3.1-8b --profiler ncu --profiler-option no_caching_allocator=1 --profiler-option cache_control=none --profiler-option launch_count=200 > $OUT/ncu_run.txt 2>&1
T2=$(date +%s); echo "ncu run (200 kernels, no caching allocator, cache-control none) wall: $((T2-T1)) s" | tee -a $L
grep -E "^\[|session" $OUT/ncu_run.txt | tail -12 | tee -a $L
grep "==PROF== Profiling" $H/runs/*/run.log | head -1 | tee -a $L
grep -n "==PROF==" $H/runs/*/run.log | sed -n '1p;$p' | cut -c1-80 | tee -a $L
timeout 300 python3 benchmarks/moe_ladder.py 2>&1 | tail -25 | tee -a $L
cp benchmarks/results/moe_ladder-*.json $OUT/ 2>/dev/null
timeout 120 python3 -m pytest -q -m gpu tests/unit/test_moe_layers.py -x -p no:cacheprovider 2>&1 | tail -5 | tee -a $L
