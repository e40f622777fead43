#!/usr/bin/env bash
# 2026-11-29 (second session), nvidia-h200-x2, call A: the .ncu-rep roofline through NVIDIA's
# ncu_report (issue 3), then the 2-GPU runs of issue 7: the NCCL GPU tests, and the scaling
# tables of dense tensor parallel (llama-3.1-8b) and MoE expert parallel (moe/full).
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt
nvidia-smi --query-gpu=index,name,memory.total,clocks.max.sm --format=csv | tee -a $L
nvidia-smi topo -m 2>&1 | head -8 | tee -a $L
python3 -c 'import torch; print("torch", torch.__version__, "gpus", torch.cuda.device_count())' | tee -a $L

# issue 3: analyze the H100 .ncu-rep through ncu_report (child reader)
T1=$(date +%s)
timeout 90 python3 -m workbench.cli analyze .devcarry/mm_full.ncu-rep > $OUT/analyze_rep.txt 2>&1
echo "analyze rep rc=$? wall: $(( $(date +%s) - T1 )) s" | tee -a $L
grep -E "source: |^\| (nvjet|void)" $OUT/analyze_rep.txt | head -20 | tee -a $L
sed -n '/^## Roofline/,/^Whole step/p' $OUT/analyze_rep.txt | tee -a $L
timeout 60 python3 - <<'PY' 2>&1 | tee -a $L
import glob, sys
sys.path[:0] = glob.glob("/opt/nvidia/nsight-compute/*/extras/python") + glob.glob("/usr/local/cuda/nsight-compute*/extras/python")
import ncu_report
ctx = ncu_report.load_report(".devcarry/mm_full.ncu-rep")
a = ctx.range_by_idx(0).action_by_idx(0)
print("IMetric kinds:", [k for k in dir(ncu_report.IMetric) if k.startswith("ValueKind")][:12])
for name in ("device__attribute_display_name", "gpu__time_duration.sum", "dram__bytes.sum.per_second"):
    m = a.metric_by_name(name)
    if m is None:
        print(name, "absent"); continue
    print(name, "kind", m.kind(), "str?", m.kind() == ncu_report.IMetric.ValueKind_STRING, "as_string", m.as_string(), "unit", m.unit())
sys.stdout.flush()
import os; os._exit(0)
PY

# issue 7: the NCCL tests (dense TP, MoE EP, tiny, torch profiler, overlap section)
T1=$(date +%s)
timeout 240 python3 -m pytest -q -m gpu tests/integration/test_distributed_cpu.py -p no:cacheprovider > $OUT/pytest_dist.txt 2>&1
echo "pytest dist rc=$? wall: $(( $(date +%s) - T1 )) s" | tee -a $L
tail -5 $OUT/pytest_dist.txt | tee -a $L

# scaling: dense tensor parallel, llama-3.1-8b, CUDA graphs (L0-L4), 1 vs 2 GPUs
T1=$(date +%s)
AIPERF_HOME=/tmp/h timeout 330 python3 -m workbench.cli scale --workload dense --preset llama-3.1-8b \
  --layers L0-L4 --gpus 1,2 --device cuda --repeat 10 --timeout 160 \
  --export $OUT/scale_dense_8b_L4.md > $OUT/scale_dense.txt 2>&1
echo "scale dense rc=$? wall: $(( $(date +%s) - T1 )) s" | tee -a $L
grep -E "^\| [0-9]|Error|error" $OUT/scale_dense.txt | head -10 | tee -a $L
tail -5 $OUT/scale_dense.txt | tee -a $L
cp -r /tmp/h $OUT/home_a 2>/dev/null; find $OUT/home_a -name "*.json.gz" -size +5M -delete 2>/dev/null
