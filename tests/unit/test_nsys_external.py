"""Real nsys SQLite exports from other projects (nsys-ai's fixtures, pipit's test data) against
truth computed with the standard library (tests/data/external/nsys/nsys_truth.py): totals per
table and device, the GPU the file names, per-device NCCL / compute overlap, and the whole
`analyze` on a 2-GPU export."""

from __future__ import annotations

import pytest

from analyzers.overlap import distributed_analysis
from profilers.parsers.detect import load_artifact
from tests.unit.external_data import external, truth

FILES = ["mock.sqlite", "saxpy-mpi-cuda_nsys_perlmutter0.sqlite", "mfu_2gpu_before.sqlite",
         "mfu_2gpu_after.sqlite", "perlmutter-cloverleaf-cuda.sqlite"]


@pytest.mark.parametrize("name", FILES)
def test_totals_exact(name):
    want = truth("nsys", name)
    k = load_artifact(external("nsys", name)).kernels
    assert len(k) == want["activities"] and int(k["dur_ns"].sum()) == want["total_ns"]
    for kind, t in want["by_table"].items():
        sel = k[k["kind"].astype(str) == kind]
        assert (len(sel), int(sel["dur_ns"].sum())) == (t["count"], t["total_ns"])
    by_device = k.groupby(k["device"].astype("int64"))["dur_ns"].sum()
    assert {str(d): int(v) for d, v in by_device.items()} == want["by_device"]


@pytest.mark.parametrize("name", ["mock.sqlite", "saxpy-mpi-cuda_nsys_perlmutter0.sqlite",
                                  "perlmutter-cloverleaf-cuda.sqlite"])
def test_gpu_named_in_the_export(name):
    want = truth("nsys", name)["gpus"]
    props = load_artifact(external("nsys", name)).meta["device_properties"]
    assert [(p["id"], p["name"], p["numSms"]) for p in props] == [
        (g["id"], g["name"], g["sm_count"]) for g in want]


@pytest.mark.parametrize("name", ["mfu_2gpu_before.sqlite", "mfu_2gpu_after.sqlite"])
def test_comm_compute_overlap_per_device(name):
    """Two GPUs, one process each, NCCL all-to-all on both: the multi-GPU view per device
    (None before: an nsys file has no ranks)."""
    want = truth("nsys", name)["overlap_by_device"]
    parsed = load_artifact(external("nsys", name))
    d = distributed_analysis(parsed.kernels, parsed.ops)
    assert d is not None and d.unit == "device" and d.ranks == [0, 1]
    got = {str(r.rank): {"comm_ns": r.comm_ns, "compute_ns": r.compute_ns,
                         "overlap_ns": r.overlap_ns} for r in d.per_rank.itertuples()}
    assert got == want


def test_analyze_two_gpu_export(tmp_path, capsys):
    from workbench.cli import main

    path = external("nsys", "mfu_2gpu_before.sqlite")
    assert main(["--home", str(tmp_path), "analyze", str(path)]) == 0
    text = capsys.readouterr().out
    assert "## Multi-GPU analysis" in text and "| device | kernels |" in text
    assert "## Regions (NVTX / annotations)" in text and "FlashAttnFunc" in text
    assert "5299 GPU activities, 541.1 ms in total" in text
    assert "no TARGET_INFO_GPU rows" in text  # nsys-ai cut the GPU table from this fixture


def test_analyze_names_the_device_and_finds_ceilings(tmp_path, capsys):
    from workbench.cli import main

    path = external("nsys", "saxpy-mpi-cuda_nsys_perlmutter0.sqlite")
    assert main(["--home", str(tmp_path), "analyze", str(path)]) == 0
    text = capsys.readouterr().out
    assert "device: NVIDIA A100-SXM4-40GB" in text and "## Roofline" in text
    assert "**saxpy**: 5 iterations" in text


def test_json_export_of_a_two_process_run_reads_like_its_sqlite(tmp_path):
    """The same 2-process export written in nsys's JSON layout (no public JSON export was
    found; see test_parsers_nsys.write_nsys_json): identical kernels, launch matching (its
    correlation ids repeat across the two processes) and regions."""
    from analyzers.regions import region_analysis
    from tests.unit.test_parsers_nsys import write_nsys_json

    db = external("nsys", "mfu_2gpu_before.sqlite")
    js = write_nsys_json(db, tmp_path / "mfu.json")
    a, b = load_artifact(js), load_artifact(db)
    assert a.kind == "nsys_json"
    cols = ["name", "kind", "start_ns", "dur_ns", "device", "stream", "correlation", "grid",
            "block", "registers", "shared_mem"]
    assert a.kernels[cols].astype(object).equals(b.kernels[cols].astype(object))
    ra = region_analysis(a.annotations, a.kernels, a.runtime)
    rb = region_analysis(b.annotations, b.kernels, b.runtime)
    assert ra.attributed_gpu_ns == rb.attributed_gpu_ns == truth(
        "nsys", "mfu_2gpu_before.sqlite")["regions"]["attributed_ns"]
