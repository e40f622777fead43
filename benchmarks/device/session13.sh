#!/usr/bin/env bash
# 2026-11-29 (second session), nvidia-h200-x2, call C: the fixed .ncu-rep roofline with NVIDIA's
# module (issue 3), the 8B ncu run timed again, the 2-GPU tests after the trace-alignment fix,
# scaling tables and 2-rank torch-profiler reports (dense TP, MoE EP), the serving load test at
# the new default rates. Everything lands in one archive (the device returns few files).
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
R=/tmp/res; mkdir -p $R; L=$R/log.txt
finish() { cp -r benchmarks/results $R/results 2>/dev/null; cp /tmp/h/sessions.db $R/ 2>/dev/null
  (cd /tmp && tar czf $OUT/c.tgz res); cp $L $OUT/log.txt; }
trap finish EXIT
START=$(date +%s)
t() { local l=$(( 555 - ($(date +%s) - START) )); [ $l -lt 5 ] && l=5; echo $(( $1 < l ? $1 : l )); }

T1=$(date +%s)
timeout $(t 90) python3 -m workbench.cli analyze .devcarry/mm_full.ncu-rep > $R/analyze_rep.txt 2>&1
echo "analyze rep rc=$? wall: $(( $(date +%s) - T1 )) s" | tee -a $L
sed -n '/^## Roofline/,/^Whole step/p' $R/analyze_rep.txt | tee -a $L
timeout $(t 120) python3 -m pytest -q tests/unit/test_parsers_ncu.py tests/unit/test_ncu_rep_roofline.py -p no:cacheprovider 2>&1 | tail -2 | tee -a $L

export AIPERF_HOME=/tmp/h
T1=$(date +%s)
timeout $(t 170) python3 -m workbench.cli run --workload dense --preset llama-3.1-8b --profiler ncu --export $R/report_ncu_8b.md > $R/run_ncu_8b.txt 2>&1
echo "run 8b ncu rc=$? wall: $(( $(date +%s) - T1 )) s" | tee -a $L
tail -4 $R/run_ncu_8b.txt | tee -a $L

T1=$(date +%s)
timeout $(t 200) python3 -m pytest -q -m gpu tests/integration/test_distributed_cpu.py -p no:cacheprovider > $R/pytest_dist.txt 2>&1
echo "pytest dist rc=$? wall: $(( $(date +%s) - T1 )) s" | tee -a $L
tail -3 $R/pytest_dist.txt | tee -a $L

T1=$(date +%s)
timeout $(t 100) python3 -m workbench.cli run --workload dense --preset llama-3.1-8b --layers L0-L4 \
  --nproc-per-node 2 --profiler torch --device cuda --repeat 10 --export $R/report_dense_tp2.md > $R/run_dense_tp2.txt 2>&1
echo "run dense tp2 torch rc=$? wall: $(( $(date +%s) - T1 )) s" | tee -a $L
sed -n '/^## Multi-rank/,/^## GPU time/p' $R/report_dense_tp2.md | head -14 | tee -a $L

T1=$(date +%s)
timeout $(t 120) python3 -m workbench.cli run --workload moe --preset full --layers L0,L6-moe-grouped \
  --nproc-per-node 2 --profiler torch --device cuda --repeat 10 --export $R/report_moe_ep2.md > $R/run_moe_ep2.txt 2>&1
echo "run moe ep2 torch rc=$? wall: $(( $(date +%s) - T1 )) s" | tee -a $L
sed -n '/^## Multi-rank/,/^## GPU time/p' $R/report_moe_ep2.md | head -14 | tee -a $L

T1=$(date +%s)
timeout $(t 110) python3 -m workbench.cli scale --workload dense --preset llama-3.1-8b --layers L0-L4 \
  --gpus 1,2 --device cuda --repeat 20 --timeout $(t 100) --export $R/scale_dense_8b_L4.md > $R/scale_dense.txt 2>&1
echo "scale dense rc=$? wall: $(( $(date +%s) - T1 )) s" | tee -a $L
grep -E "^\| [0-9]" $R/scale_dense.txt | head -3 | tee -a $L
T1=$(date +%s)
timeout $(t 110) python3 -m workbench.cli scale --workload moe --preset full --layers L0,L6-moe-grouped \
  --gpus 1,2 --device cuda --repeat 10 --timeout $(t 100) --export $R/scale_moe_full.md > $R/scale_moe.txt 2>&1
echo "scale moe rc=$? wall: $(( $(date +%s) - T1 )) s" | tee -a $L
grep -E "^\| [0-9]" $R/scale_moe.txt | head -3 | tee -a $L

T1=$(date +%s)
timeout $(t 150) python3 benchmarks/serve_load.py --requests 60 --max-duration 25 > $R/serve_load.txt 2>&1
echo "serve_load rc=$? wall: $(( $(date +%s) - T1 )) s" | tee -a $L
tail -12 $R/serve_load.txt | tee -a $L
