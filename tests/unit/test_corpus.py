"""Our parsers against profiler artifacts other projects wrote (tests/data/external/): for each,
the totals per activity kind equal the truth in its sidecar, computed independently of our
code (benchmarks/corpus.py: stdlib json / sqlite3 / csv). A format our parser cannot read yet,
which another change is fixing, is an xfail(strict=True) case: it flips when that fix merges.

Files marked "fetched" in MANIFEST.md are not kept in git; `python benchmarks/corpus.py fetch`
brings them (their sha256 is checked). A case whose file is absent is skipped, saying so.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest

from profilers.parsers.detect import load_artifact, load_artifacts

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("corpus", ROOT / "benchmarks" / "corpus.py")
assert _spec and _spec.loader
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)

CASES = corpus.sidecars()
NCU_ROWS = ("ncu's default CSV layout (a row per metric per launch) reads as one 0 ns kernel per "
            "metric row: the parsers change of issue 16 reads it")
KNOWN_GAPS: dict[str, str] = {}  # artifact -> why our reading differs (none now)


def _present(file: Path, meta: dict[str, Any]) -> Path:
    if not file.exists():
        pytest.skip(f"{file.name} not fetched: python benchmarks/corpus.py fetch")
    assert corpus.sha256(file) == meta["sha256"], f"{file.name} differs from its source"
    return file


def _ours(kernels: Any) -> dict[str, dict[str, int]]:
    out = {}
    for kind, group in kernels.groupby(kernels["kind"].astype(str), observed=True):
        out[str(kind)] = {"count": len(group), "total_ns": int(group["dur_ns"].sum(skipna=True))}
    return out


def _expected(truth: dict[str, Any]) -> dict[str, dict[str, int]]:
    other = truth.get("other_device_activities") or {}
    if other:  # another accelerator: all its device activity, whatever kind we call it
        count = sum(v["count"] for v in other.values())
        total = sum(v["dur_ns"] for v in other.values())
        # MTIA's event_wait / event_record are device-side stream waits, not work: left out
        # of the activity as CUDA's cuda_sync events are (analyzers.runtime_api).
        for name, waits in (truth.get("mtia_ccp_events_by_name") or {}).items():
            if name in ("event_wait", "event_record"):
                count, total = count - waits["count"], total - waits["total_ns"]
        return {"all": {"count": count, "total_ns": total}}
    return truth["kinds"]


def _params() -> list[Any]:
    out = []
    for file, meta in CASES:
        marks = ([pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[file.name])]
                 if file.name in KNOWN_GAPS else [])
        out.append(pytest.param(file, meta, id=file.name, marks=marks))
    return out


@pytest.mark.parametrize(("file", "meta"), _params())
def test_totals_equal_the_independent_truth(file: Path, meta: dict[str, Any]) -> None:
    parsed = load_artifact(_present(file, meta))
    expected = _expected(meta["truth"])
    ours = _ours(parsed.kernels)
    if "all" in expected:
        ours = {"all": {"count": sum(v["count"] for v in ours.values()),
                        "total_ns": sum(v["total_ns"] for v in ours.values())}}
    assert ours == expected


def test_two_ranks_as_one_folder(tmp_path: Path) -> None:
    ranks = [(f, m) for f, m in CASES if f.name.startswith("hta_sampled_rank-")]
    assert len(ranks) == 2
    for file, meta in ranks:
        os.symlink(_present(file, meta), tmp_path / file.name)
    parsed = load_artifacts([tmp_path])
    k = parsed.kernels
    assert sorted(k["rank"].dropna().unique().tolist()) == [0, 1]
    for _, meta in ranks:
        mine = k[k["rank"] == meta["truth"]["rank"]]
        assert _ours(mine) == meta["truth"]["kinds"]


def test_manifest_and_gitignore_are_generated_from_the_sidecars() -> None:
    assert CASES, "no sidecars in tests/data/external"
    assert (corpus.EXTERNAL / "MANIFEST.md").read_text() == corpus.manifest()
    ignored = (corpus.EXTERNAL / ".gitignore").read_text().splitlines()
    assert {f"/{f.name}" for f, m in CASES if not m.get("committed")} == \
        {line for line in ignored if line.startswith("/")}
    for file, meta in CASES:
        for key in ("repo", "path", "commit", "licence", "kind", "truth", "truth_method"):
            assert meta.get(key) not in (None, ""), f"{file.name}: no {key}"
