#!/usr/bin/env bash
# 2026-11-29 (second session), call D: the serving load test after the engine fix (no cuDNN
# attention, one metadata copy), rates bracketing the knee; benchmarks/scaling.py where the
# machine has 2 GPUs (the x2 kind was withdrawn before this call: it ran on one H200).
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
R=/tmp/res; mkdir -p $R; L=$R/log.txt
finish() { cp benchmarks/results/scaling-* benchmarks/results/serve_load-* $R/ 2>/dev/null
  (cd /tmp && tar czf $OUT/d.tgz res); cp $L $OUT/log.txt; }
trap finish EXIT
START=$(date +%s)
t() { local l=$(( 330 - ($(date +%s) - START) )); [ $l -lt 5 ] && l=5; echo $(( $1 < l ? $1 : l )); }

T1=$(date +%s)
timeout $(t 200) python3 benchmarks/serve_load.py --rates 1,2,4,8,16,32 --requests 120 --max-duration 40 > $R/serve_load.txt 2>&1
echo "serve_load rc=$? wall: $(( $(date +%s) - T1 )) s" | tee -a $L
tail -12 $R/serve_load.txt | tee -a $L

T1=$(date +%s)
[ "$(nvidia-smi -L | wc -l)" -ge 2 ] && timeout $(t 170) python3 benchmarks/scaling.py --gpus 1,2 --repeat 20 --timeout 150 > $R/scaling.txt 2>&1
echo "scaling rc=$? wall: $(( $(date +%s) - T1 )) s" | tee -a $L
grep -E "^\| [0-9]|^### |results:" $R/scaling.txt | tee -a $L

