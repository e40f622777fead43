#!/usr/bin/env bash
# Last call: ncu on the 8B decode step (timed), the 8B memory profile, then the dense ladder.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
L=$OUT/log.txt; H=/tmp/h4
T1=$(date +%s)
timeout 220 python3 -m workbench.cli --home $H run --workload dense --preset llama-3.1-8b --profiler ncu --export $OUT/r_ncu.md > $OUT/ncu_run.txt 2>&1
T2=$(date +%s); echo "ncu run wall: $((T2-T1)) s" | tee -a $L
grep -c "==PROF== Profiling" $H/runs/*/run.log | tee -a $L
grep -vE "^==" $OUT/ncu_run.txt | tail -8 | tee -a $L
timeout 110 python3 -m pytest -q -m gpu tests/integration/test_byo.py -k memory -p no:cacheprovider 2>&1 | tail -4 | tee -a $L
python3 - <<'PY' 2>&1 | tee -a $L
import json,glob
for p in glob.glob('/tmp/pytest-of-root/**/result.json', recursive=True):
    r=json.load(open(p)); mp=(r.get('extra') or {}).get('memory_profile')
    if mp: print(json.dumps(mp)[:1500])
PY
AIPERF_HOME=/tmp/lad timeout 250 python3 benchmarks/dense_ladder.py --new-tokens 16 --repeat 5 --out-dir $OUT 2>&1 | tail -30 | tee -a $L
python3 -m workbench.cli --home /tmp/lad sessions list 2>&1 | tee -a $L
ls $OUT | tee -a $L
