#!/usr/bin/env bash
# 2026-11-29, nvidia-h200 (the only kind lent that day), call A: the GEMV microbenchmark,
# ncu on the 8B decode step (default scope: one sampled decoder block), an ncu_report probe
# on the committed H100 fixture (carried in .devcarry/), and the serving load test.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
L=$OUT/log.txt
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total,power.limit --format=csv 2>&1 | tee -a $L
echo "ncu: $(which ncu) $(ncu --version 2>&1 | tail -1)" | tee -a $L
timeout 180 python3 benchmarks/gemv.py --out-dir $OUT > $OUT/gemv.txt 2>&1; echo "gemv rc=$?" | tee -a $L
tail -24 $OUT/gemv.txt | tee -a $L
T1=$(date +%s)
timeout 220 python3 -m workbench.cli --home /tmp/h5 run --workload dense --preset llama-3.1-8b --profiler ncu --export $OUT/r_ncu.md > $OUT/ncu_run.txt 2>&1
echo "ncu run rc=$? wall: $(( $(date +%s) - T1 )) s" | tee -a $L
grep -c "==PROF== Profiling" /tmp/h5/runs/*/run.log 2>&1 | tee -a $L
grep -vE "^==" $OUT/ncu_run.txt | tail -6 | tee -a $L
timeout 70 python3 -c "
import faulthandler, sys, time
faulthandler.dump_traceback_later(50, exit=True)
from profilers.parsers.ncu_rep import import_ncu_report, ncu_python_dirs
print('ncu_report dirs', ncu_python_dirs()); t = time.time()
m = import_ncu_report(); print('imported', m, round(time.time() - t, 2), flush=True)
ctx = m.load_report('.devcarry/mm_full.ncu-rep'); print('loaded', round(time.time() - t, 2), ctx.num_ranges(), flush=True)
" 2>&1 | tail -25 | tee -a $L
T1=$(date +%s)
timeout 60 python3 -m workbench.cli analyze .devcarry/mm_full.ncu-rep > $OUT/analyze_rep.txt 2>&1
echo "analyze rep rc=$? wall: $(( $(date +%s) - T1 )) s" | tee -a $L
head -30 $OUT/analyze_rep.txt | tee -a $L
timeout 240 python3 benchmarks/serve_load.py > $OUT/serve.txt 2>&1; echo "serve rc=$?" | tee -a $L
cp benchmarks/results/serve_load-*.json $OUT/ 2>/dev/null
tail -20 $OUT/serve.txt | tee -a $L
ls $OUT | tee -a $L
