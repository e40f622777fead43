#!/usr/bin/env bash
# Which tensor metrics does this ncu know, and how long does the 8B decode step take under it?
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
L=$OUT/log.txt
ncu --query-metrics --chip gh100 2>&1 | grep -iE "ops_path_tensor|pipe_tensor" | head -40 | tee -a $L
ncu --list-sets 2>&1 | head -30 | tee -a $L
T1=$(date +%s)
timeout 330 python3 -m workbench.cli --home /tmp/h run --workload dense --preset llama-3.1-8b --profiler ncu --export $OUT/r_ncu.md 2>&1 | tee -a $L | grep -vE "^==PROF==" | tail -30
T2=$(date +%s); echo "ncu run wall: $((T2-T1)) s" | tee -a $L
ls -la /tmp/h/runs/*/ | tee -a $L
tail -5 /tmp/h/runs/*/run.log | tee -a $L
cp /tmp/h/runs/*/ncu.csv $OUT/ 2>/dev/null; gzip -9 $OUT/ncu.csv 2>/dev/null
