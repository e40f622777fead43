"""Format detection by content and the load_artifact front door."""

from __future__ import annotations

import gzip
import importlib.util
import shutil
from pathlib import Path

import pytest

from profilers.parsers.detect import detect_format, load_artifact
from workloads.errors import WorkbenchError

_spec = importlib.util.spec_from_file_location(
    "_nsys_db", Path(__file__).with_name("test_parsers_nsys.py"))
_mod = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(_mod)  # type: ignore[union-attr]
make_db = _mod.make_db


def test_fixtures_by_content_not_name(h100_fixtures, tmp_path):
    renamed = {"torch_trace.json": "a.bin", "ncu_raw.csv": "b.json", "mm_full.ncu-rep": "c.csv"}
    expect = {"a.bin": "kineto", "b.json": "ncu_csv", "c.csv": "ncu_rep"}
    for src, dst in renamed.items():
        shutil.copy(h100_fixtures / src, tmp_path / dst)
        assert detect_format(tmp_path / dst) == expect[dst]
    gz = tmp_path / "trace.pt"
    gz.write_bytes(gzip.compress((h100_fixtures / "torch_trace.json").read_bytes()))
    assert detect_format(gz) == "kineto"
    assert detect_format(make_db(tmp_path / "n.json")) == "nsys_sqlite"
    d = tmp_path / "ranks"
    d.mkdir()
    shutil.copy(h100_fixtures / "torch_trace.json", d / "r0.json")
    assert detect_format(d) == "kineto_dir"


def test_load_artifact_each_kind(h100_fixtures, tmp_path):
    a = load_artifact(h100_fixtures / "torch_trace.json")
    assert a.kind == "kineto" and a.ops is not None and a.runtime is not None and a.metrics is None
    b = load_artifact(h100_fixtures / "ncu_raw.csv")
    assert b.kind == "ncu_csv" and b.metrics is not None and len(b.kernels) == 6
    c = load_artifact(make_db(tmp_path / "n.sqlite"))
    assert c.kind == "nsys_sqlite" and len(c.kernels) == 4 and len(c.annotations) == 2


@pytest.mark.parametrize("content", [
    None, b"", b"\x1f\x8b\x08\x00garbage", b"\x00\x01\x02binary", "héllo".encode("latin-1"),
    b'{"foo": 1}', b"SQLite format 3\x00" + b"\x00" * 50, b"NVR\x00" + b"\x00" * 50,
])
def test_problems_are_one_line_workbench_errors(tmp_path, content):
    p = tmp_path / "artifact"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(WorkbenchError) as err:
        load_artifact(p)
    assert str(p) in str(err.value) or "ncu_report" in str(err.value)
    assert "\n" not in str(err.value)
