#!/usr/bin/env bash
# 2026-11-29 (second session), nvidia-h200-x2, call B: the ncu_report reader's JSON of the H100
# .ncu-rep (every metric, for the roofline fix and its test), the NCCL GPU tests after the
# CUDA-graph/destroy_process_group fix, the scaling tables (dense TP 8B with CUDA graphs, MoE EP
# full), and torch-profiler runs on 2 GPUs whose reports carry the overlap analysis.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt
NCU_PY=$(ls -d /opt/nvidia/nsight-compute/*/extras/python | head -1)
timeout 60 python3 profilers/parsers/_ncu_rep_reader.py .devcarry/mm_full.ncu-rep $NCU_PY > $OUT/mm_full_rep.json
echo "reader rc=$? bytes $(wc -c < $OUT/mm_full_rep.json)" | tee -a $L

T1=$(date +%s)
timeout 300 python3 -m pytest -q -m gpu tests/integration/test_distributed_cpu.py -p no:cacheprovider > $OUT/pytest_dist.txt 2>&1
echo "pytest dist rc=$? wall: $(( $(date +%s) - T1 )) s" | tee -a $L
tail -4 $OUT/pytest_dist.txt | tee -a $L

export AIPERF_HOME=/tmp/h
T1=$(date +%s)
timeout 200 python3 -m workbench.cli scale --workload dense --preset llama-3.1-8b --layers L0-L4 \
  --gpus 1,2 --device cuda --repeat 20 --timeout 120 --export $OUT/scale_dense_8b_L4.md > $OUT/scale_dense.txt 2>&1
echo "scale dense rc=$? wall: $(( $(date +%s) - T1 )) s" | tee -a $L
grep -E "^\| [0-9]|timeout|rror" $OUT/scale_dense.txt | head -6 | tee -a $L

T1=$(date +%s)
timeout 220 python3 -m workbench.cli scale --workload moe --preset full --layers L0,L6-moe-grouped \
  --gpus 1,2 --device cuda --repeat 10 --timeout 140 --export $OUT/scale_moe_full.md > $OUT/scale_moe.txt 2>&1
echo "scale moe rc=$? wall: $(( $(date +%s) - T1 )) s" | tee -a $L
grep -E "^\| [0-9]|timeout|rror" $OUT/scale_moe.txt | head -6 | tee -a $L

T1=$(date +%s)
timeout 120 python3 -m workbench.cli run --workload dense --preset llama-3.1-8b --layers L0-L4 \
  --nproc-per-node 2 --profiler torch --device cuda --repeat 10 --export $OUT/report_dense_tp2.md > $OUT/run_dense_tp2.txt 2>&1
echo "run dense tp2 torch rc=$? wall: $(( $(date +%s) - T1 )) s" | tee -a $L
sed -n '/^## Multi-rank/,/^## Top/p' $OUT/report_dense_tp2.md | head -24 | tee -a $L

for d in /tmp/h/runs/*; do b=$(basename $d); for f in $d/*.log $d/result.json; do [ -f $f ] && cp $f $OUT/$b-$(basename $f); done; done
cp /tmp/h/sessions.db $OUT/ 2>/dev/null
