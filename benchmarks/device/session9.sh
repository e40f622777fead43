#!/usr/bin/env bash
# 2026-11-29, nvidia-h200, call E: why is L5-gemv slower than L5 in the ladder when its
# GEMVs are faster in a graph? Both under torch.profiler, then the workbench's own diff.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
L=$OUT/log.txt; H=/tmp/h9
for layers in L0-L5 L0-L5,L5-gemv; do
  n=$(echo $layers | tr -c 'a-zA-Z0-9\n' '_')
  timeout 200 python3 -m workbench.cli --home $H run --workload dense --preset llama-3.1-8b --layers $layers --profiler torch --new-tokens 8 --repeat 10 --json $OUT/rec_$n.json --quiet > $OUT/run_$n.txt 2>&1
  echo "$layers rc=$?" | tee -a $L; tail -4 $OUT/run_$n.txt | tee -a $L
done
A=$(python3 -c "import json;print(json.load(open('$OUT/rec_L0_L5.json'))['record']['id'])")
B=$(python3 -c "import json;print(json.load(open('$OUT/rec_L0_L5_L5_gemv.json'))['record']['id'])")
timeout 120 python3 -m workbench.cli --home $H diff $A $B --top 25 --export $OUT/diff.md > $OUT/diff.txt 2>&1; echo "diff rc=$?" | tee -a $L
head -90 $OUT/diff.txt | tee -a $L
