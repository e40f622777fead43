#!/usr/bin/env bash
# One device call: skeleton on the 8B preset (timer, ncu, torch), calibrate, real HF MoE traces.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
H=/tmp/home; L=$OUT/log.txt
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,power.limit,temperature.gpu --format=csv | tee -a $L
python3 -m workloads.calibrate --out $OUT/calibration.json 2>&1 | tail -20 | tee -a $L
T0=$(date +%s)
python3 -m workbench.cli --home $H run --workload dense --preset llama-3.1-8b --profiler timer --export $OUT/r_timer.md 2>&1 | tee -a $L
T1=$(date +%s); echo "timer run wall: $((T1-T0)) s" | tee -a $L
python3 -m workbench.cli --home $H run --workload dense --preset llama-3.1-8b --profiler ncu --export $OUT/r_ncu.md 2>&1 | tail -25 | tee -a $L
T2=$(date +%s); echo "ncu run wall: $((T2-T1)) s" | tee -a $L
python3 -m workbench.cli --home $H run --workload dense --preset llama-3.1-8b --layers L0,L1 --profiler torch --export $OUT/r_torch.md 2>&1 | tail -8 | tee -a $L
python3 -m workbench.cli --home $H sessions list | tee -a $L
timeout 240 python3 benchmarks/capture_hf_moe_trace.py --out $OUT/traces 2>&1 | grep -v Warning | tail -8 | tee -a $L
mv $OUT/traces/*.gz $OUT/ 2>/dev/null
tar czf $OUT/home.tgz --exclude='*.ncu-rep' -C /tmp home
ls -la $OUT | tee -a $L
