#!/usr/bin/env bash
# Issue 20, dense-decode half (helper "kernels"), nvidia-h200, one call, <= 9 minutes:
#   1. GPU tests of the decode kernels (split-KV attention vs SDPA over contexts 1..8193, GQA
#      1/4/8, bf16/FP8 KV, static/paged, CUDA-graph replay; fused ops; every FP8 GEMV mode)
#   2. the ladder rows that prove the targets: bf16 (L0-L4,L5-gemv) and FP8 (L0-L4,L5-fp8) at
#      batch 1, context 128 and 8192, each against the copy bandwidth of the same run, with
#      parity and the serving peak (targets: bf16 >= 85%, >= 237 tok/s at 128; FP8 >= 75%,
#      peak <= 0.6x bf16)
#   3. benchmarks/decode_attention.py: the kernel vs SDPA (cuDNN/flash/efficient, and the
#      masked call L3 made before) per layer at 128..32k, share of copy bandwidth, sweep
#   4. the compiled best stack (L0-L4,L5,L5-gemv) at context 128: the custom ops in L5
#   5. benchmarks/gemv.py: which FP8 GEMV mode wins per shape, bytes/s vs bf16
#   6. GPU tests of the whole decoder (graphed, compiled) vs the unfused one; FP8 peak
# Each step runs under timeout with what is left of the budget; everything lands in one
# archive ($OUT/session16.tgz) and log.txt, whatever step fails.
# Needs .whl (msgspec, orjson, platformdirs for CPython 3.12) carried with the call.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export AIPERF_HOME=/tmp/h; mkdir -p $AIPERF_HOME
R=/tmp/res16; mkdir -p $R; L=$R/log.txt
finish() { cp benchmarks/results/decode_attention-* benchmarks/results/gemv-* $R/ 2>/dev/null
  for d in /tmp/ladA /tmp/ladB; do [ -d $d ] && cp -r $d $R/; done
  (cd /tmp && tar czf $OUT/session16.tgz res16 h/sessions.db h/runs 2>/dev/null); cp $L $OUT/log.txt; }
trap finish EXIT
START=$(date +%s)
t() { local l=$(( 530 - ($(date +%s) - START) )); [ $l -lt 5 ] && l=5; echo $(( $1 < l ? $1 : l )); }
step() { local tag=$1 lim=$2; shift 2; local T1=$(date +%s)
  timeout $(t $lim) "$@" > $R/$tag.txt 2>&1
  echo "== $tag rc=$? $(( $(date +%s) - T1 )) s" | tee -a $L; tail -${TAIL:-4} $R/$tag.txt | tee -a $L; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw --format=csv | tee -a $L
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a $L

T=tests/unit/test_decode_kernels_gpu.py
step tests_kernels 100 python3 -m pytest -q -m gpu -p no:cacheprovider -rf $T -k "not decoder and not serves"
TAIL=16 step ladder_targets 170 python3 benchmarks/dense_ladder.py --skip decode,prefill --contexts 128,8192 --batches 1 --repeat 10 --grid-stacks "L0-L4,L5-gemv;L0-L4,L5-fp8" --out-dir /tmp/ladA
TAIL=14 step decode_attention 70 python3 benchmarks/decode_attention.py --contexts 128,2048,8192,32768 --batches 1 --fp8-contexts 8192
TAIL=12 step ladder_compiled 90 python3 benchmarks/dense_ladder.py --skip decode,prefill,warmup --contexts 128 --batches 1 --repeat 10 --grid-stacks "L0-L4,L5,L5-gemv" --out-dir /tmp/ladB
TAIL=8 step gemv 60 python3 benchmarks/gemv.py
step tests_decoder 60 python3 -m pytest -q -m gpu -p no:cacheprovider -rf $T -k "decoder or serves"
echo "total $(( $(date +%s) - START )) s" | tee -a $L
