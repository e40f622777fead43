#!/usr/bin/env bash
# 2026-11-29, nvidia-h200, call F: the decode ladder again after the graph-break fix of the
# GEMV / FP8 linears (torch.ops.aiperf.gemv). Prefill rows are call C's (unchanged path).
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
L=$OUT/log.txt
AIPERF_HOME=/tmp/lad timeout 330 python3 benchmarks/dense_ladder.py --skip prefill --new-tokens 16 --repeat 10 --out-dir $OUT > $OUT/ladder.txt 2>&1
echo "ladder rc=$?" | tee -a $L
grep -E "^\[|Error|error" $OUT/ladder.txt | tail -30 | tee -a $L
tail -10 $OUT/ladder.txt | tee -a $L
