#!/usr/bin/env bash
# 2026-11-29, nvidia-h200, call D: GPU tests of the GEMV / FP8 layers (graph-timed config
# choice), the GEMV table in CUDA graphs, the .ncu-rep reader (child process) on the H100
# fixture, and the micro-workload benchmarks.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
L=$OUT/log.txt
timeout 120 python3 -m pytest -q -m gpu tests/unit/test_workloads_ladder_lowbit.py -p no:cacheprovider 2>&1 | tail -4 | tee -a $L
timeout 150 python3 benchmarks/gemv.py --out-dir $OUT > $OUT/gemv.txt 2>&1; echo "gemv rc=$?" | tee -a $L
tail -30 $OUT/gemv.txt | tee -a $L
T1=$(date +%s)
timeout 60 python3 -m workbench.cli analyze .devcarry/mm_full.ncu-rep > $OUT/analyze_rep.txt 2>&1
echo "analyze rep rc=$? wall: $(( $(date +%s) - T1 )) s" | tee -a $L
head -40 $OUT/analyze_rep.txt | tee -a $L
timeout 230 python3 benchmarks/micro.py --quick > $OUT/micro.txt 2>&1; echo "micro rc=$?" | tee -a $L
cp benchmarks/results/micro-*.json $OUT/ 2>/dev/null
tail -40 $OUT/micro.txt | tee -a $L
