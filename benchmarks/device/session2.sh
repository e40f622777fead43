#!/usr/bin/env bash
# 8B under ncu (timed), 8B under torch.profiler, real HF MoE generate traces.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
L=$OUT/log.txt; H=/tmp/h2
ncu --query-metrics --chip gh100 2>&1 | grep -iE "ops_path_tensor_op_hgmma.*fp8|ops_path_tensor_op_.*e4m3" | head -8 | tee -a $L
T1=$(date +%s)
timeout 300 python3 -m workbench.cli --home $H run --workload dense --preset llama-3.1-8b --profiler ncu --export $OUT/r_ncu.md > $OUT/ncu_run.txt 2>&1
T2=$(date +%s); echo "ncu run wall: $((T2-T1)) s" | tee -a $L
grep -c "==PROF== Profiling" $H/runs/*/run.log | tee -a $L
grep -vE "^==PROF==" $OUT/ncu_run.txt | tail -12 | tee -a $L
cp $H/runs/*/ncu.csv $OUT/ncu_8b_decode.csv 2>/dev/null && gzip -9 $OUT/ncu_8b_decode.csv
timeout 150 python3 -m workbench.cli --home $H run --workload dense --preset llama-3.1-8b --layers L0,L1 --profiler torch --export $OUT/r_torch.md 2>&1 | tail -6 | tee -a $L
timeout 200 python3 benchmarks/capture_hf_moe_trace.py --out /tmp/traces 2>&1 | grep -v -i warn | tail -6 | tee -a $L
mv /tmp/traces/*.gz $OUT/ 2>/dev/null
ls -la $OUT | tee -a $L
