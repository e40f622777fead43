#!/usr/bin/env bash
# 2026-12-01, nvidia-h200, call D (last ~5 minutes of device time): the best bf16 stack under
# --profiler torch with the split-KV decode attention, given more time than call B's 130 s
# (its compile did not finish there). SIGINT (not SIGTERM) at the limit: the CLI cancels and
# records the run, where a SIGTERM left the child orphaned (issue 17).
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 AIPERF_HOME=/tmp/hd
T1=$(date +%s)
timeout -s INT 215 python3 -m workbench.cli run --device cuda --label dense_best --workload dense \
  --preset llama-3.1-8b --profiler torch --layers L0-L4,L5,L5-gemv --export /tmp/hd/dense_best.md > /tmp/hd.log 2>&1
echo "dense_best rc=$? $(( $(date +%s) - T1 )) s" | tee -a /tmp/hd.log; tail -5 /tmp/hd.log
(cd /tmp && tar czf $OUT/session20.tgz hd hd.log)
