#!/usr/bin/env bash
# 2026-11-29, nvidia-h200, call C: the whole dense ladder (decode + 8192-token prefill) after
# the GEMV config choice moved from Triton's autotuner to CUDA-graph timing (m1_config).
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
L=$OUT/log.txt
AIPERF_HOME=/tmp/lad timeout 570 python3 benchmarks/dense_ladder.py --new-tokens 16 --repeat 10 --out-dir $OUT > $OUT/ladder.txt 2>&1
echo "ladder rc=$?" | tee -a $L
grep -E "^\[|Error|error" $OUT/ladder.txt | tail -30 | tee -a $L
tail -22 $OUT/ladder.txt | tee -a $L
