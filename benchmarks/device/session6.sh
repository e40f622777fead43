#!/usr/bin/env bash
# 2026-11-29, nvidia-h200, call B: the GEMV table with every config swept (FP8 tables widened
# after call A), then the dense decode ladder (prefill rows in call C).
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
L=$OUT/log.txt
timeout 150 python3 benchmarks/gemv.py --sweep --out-dir $OUT > $OUT/gemv.txt 2>&1; echo "gemv rc=$?" | tee -a $L
grep -v "^    sweep" $OUT/gemv.txt | tail -22 | tee -a $L
AIPERF_HOME=/tmp/lad timeout 420 python3 benchmarks/dense_ladder.py --skip prefill --new-tokens 16 --repeat 10 --out-dir $OUT > $OUT/ladder.txt 2>&1
echo "ladder rc=$?" | tee -a $L
grep -E "^\[|Error|error" $OUT/ladder.txt | tail -30 | tee -a $L
tail -12 $OUT/ladder.txt | tee -a $L
ls $OUT | tee -a $L
