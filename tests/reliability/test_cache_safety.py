"""Defect 4: `report` unpickled runs/<id>/cache/*.pkl, so a session folder copied from someone
else ran code on open. The cache is data now (MessagePack), validated, rebuilt when wrong."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import msgspec
import pandas as pd
import pytest

from profilers.parsers.detect import ParsedArtifact, load_artifact
from sessions import parsed_cache
from tests.reliability.tools import FIXTURES, TRACE, cli, saved_session
from workloads.errors import CorruptCache


class _Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, proof: Path) -> None:
        self.proof = proof

    def __reduce__(self):
        return (open, (str(self.proof), "w"))


def _report(home: Path, run_id: str) -> str:
    proc = cli(home, "report", run_id)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def test_a_crafted_cache_in_a_copied_session_runs_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run_id = saved_session(home)
    clean = _report(home, run_id)
    run_dir = home / "runs" / run_id
    proof = tmp_path / "code-ran"
    cache_dir = run_dir / "cache"
    cache_dir.mkdir(exist_ok=True)
    # what the old version read (name.parsed.pkl, version 2), newer than the artifact
    crafted = pickle.dumps((2, _Payload(proof)))
    for name in (f"{TRACE.name}.parsed.pkl", f"{TRACE.name}{parsed_cache.SUFFIX}"):
        (cache_dir / name).write_bytes(crafted)
        later = time.time() + 60
        os.utime(cache_dir / name, (later, later))
    assert _report(home, run_id) == clean
    assert not proof.exists(), "the cache was unpickled"
    assert not (cache_dir / f"{TRACE.name}.parsed.pkl").exists()  # deleted unread
    rebuilt = cache_dir / f"{TRACE.name}{parsed_cache.SUFFIX}"
    assert msgspec.msgpack.decode(rebuilt.read_bytes())["format"] == parsed_cache.FORMAT


def test_a_corrupt_cache_is_recomputed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run_id = saved_session(home)
    clean = _report(home, run_id)
    cache = home / "runs" / run_id / "cache" / f"{TRACE.name}{parsed_cache.SUFFIX}"
    assert cache.is_file()
    good = msgspec.msgpack.decode(cache.read_bytes())
    # a cache that decodes but lies: a column shorter than the table
    good["fields"]["kernels"]["frame"]["rows"] += 1
    cache.write_bytes(msgspec.msgpack.encode(good))
    assert _report(home, run_id) == clean
    cache.write_bytes(b"\x00garbage")
    assert _report(home, run_id) == clean


@pytest.mark.parametrize("artifact", ["torch_trace.json", "ncu_raw.csv",
                                      "hf_moe_generate_small.json.gz"])
def test_round_trip_is_exact(tmp_path: Path, artifact: str) -> None:
    source = FIXTURES / artifact
    parsed = load_artifact(source)
    cache = tmp_path / "c.msgpack"
    assert parsed_cache.save(cache, source, parsed)
    again = parsed_cache.load(cache, source, ParsedArtifact)
    for name in ("kernels", "metrics", "ops", "runtime"):
        a, b = getattr(parsed, name), getattr(again, name)
        if a is None:
            assert b is None
            continue
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        assert a.attrs == b.attrs
    assert again.meta == parsed.meta and again.kind == parsed.kind


def test_stale_or_crafted_caches_are_refused(tmp_path: Path) -> None:
    source = tmp_path / "t.json"
    source.write_bytes(TRACE.read_bytes())
    cache = tmp_path / "c.msgpack"
    assert parsed_cache.save(cache, source, load_artifact(source))
    doc = msgspec.msgpack.decode(cache.read_bytes())
    os.utime(source, (time.time() + 5, time.time() + 5))  # the artifact changed since
    with pytest.raises(CorruptCache, match="another artifact"):
        parsed_cache.load(cache, source, ParsedArtifact)
    os.utime(source, ns=(doc["source"]["mtime_ns"], doc["source"]["mtime_ns"]))
    column = doc["fields"]["kernels"]["frame"]["columns"][2][1]
    for evil in ({"type": "numpy", "dtype": "|O", "data": b"\0" * 8},
                 {"type": "masked", "dtype": "object", "data": b"", "mask": b""},
                 {"type": "pickle", "data": b""}):
        doc["fields"]["kernels"]["frame"]["columns"][2][1] = evil
        cache.write_bytes(msgspec.msgpack.encode(doc))
        with pytest.raises(CorruptCache):
            parsed_cache.load(cache, source, ParsedArtifact)
    doc["fields"]["kernels"]["frame"]["columns"][2][1] = column
    cache.write_bytes(msgspec.msgpack.encode(doc))
    assert len(parsed_cache.load(cache, source, ParsedArtifact).kernels) > 0


def test_a_value_the_format_cannot_hold_is_not_cached(tmp_path: Path) -> None:
    parsed = load_artifact(TRACE)
    parsed.meta["odd"] = object()
    assert parsed_cache.save(tmp_path / "c", TRACE, parsed) is False
    assert not (tmp_path / "c").exists()
