"""The LLM payload: structured metrics and rule findings, scrubbed of paths and host names
unless allowed; and the Advice section of the Markdown report."""

from __future__ import annotations

import json

from analyzers.advice import advise
from analyzers.advice.payload import build_payload, build_request, redact
from tests.unit.advice_cases import fixture_analysis, record


def test_payload_carries_findings_and_metrics_not_paths(h100_fixtures) -> None:
    analysis = fixture_analysis(h100_fixtures, "torch_trace.json")
    rec = record(inputs=[str(h100_fixtures / "torch_trace.json")], spec={"params": {"batch": 1}},
                 env={"platform": "Linux-6.1-x86_64 on gpu-box-17", "hostname": "gpu-box-17"},
                 metrics={"step": "decode", "latency_ms": {"median": 8.1, "samples": [8.0, 8.2]}},
                 artifacts={"trace": "/home/alice/runs/x/trace.json.gz"})
    findings = advise(analysis, rec)
    payload = build_payload(findings, analysis, rec, scrub=("gpu-box-17", "alice"))
    text = json.dumps(payload)
    assert [f["rule"] for f in payload["rule_findings"]] == [f.rule for f in findings]
    assert payload["metrics"]["latency_ms"] == {"median": 8.1}  # no raw samples
    assert payload["analysis"]["gpu_time_by_category"][0]["category"] == "gemm"
    for secret in ("gpu-box-17", "alice", str(h100_fixtures), "/home/", "inputs", "platform"):
        assert secret not in text, secret
    allowed = json.dumps(build_payload(findings, analysis, rec, allow_paths=True,
                                       scrub=("gpu-box-17",)))
    assert str(h100_fixtures / "torch_trace.json") in allowed and "gpu-box-17" in allowed


def test_redact_paths_in_free_text() -> None:
    out = redact({"a": "see /home/bob/model.py:12 and C:\\Users\\bob\\x.py", "b": ["ok 3/4"]},
                 scrub=("bob",))
    assert out == {"a": "see [path]:12 and [path]", "b": ["ok 3/4"]}


def test_request_shape() -> None:
    req = build_request({"rule_findings": []}, model="m")
    assert req["model"] == "m" and req["messages"][0]["role"] == "user"
    assert '"rule_findings": []' in req["messages"][0]["content"][0]["text"]


def test_markdown_advice_section(h100_fixtures) -> None:
    from workbench.export.markdown import render_artifact_report

    analysis = fixture_analysis(h100_fixtures, "torch_trace.json")
    text = render_artifact_report(["torch_trace.json"], analysis)
    section = text.split("## Advice", 1)[1]
    assert "1. **bf16/fp16 GEMMs take 84% of GPU time" in section
    assert "evidence: bf16/fp16 GEMM share of GPU time = 84.2%" in section
    assert "action:" in section and "expected effect:" in section
    assert "- recoverable: up to 707 µs per step (42% of the 1.68 ms step" in section
    assert "GPU is idle" not in section  # the 1.06 s before the first step is not the step's


def test_markdown_names_a_layer_once(h200_home) -> None:
    from tests.conftest import H200_RUNS
    from tests.unit.advice_cases import session_analysis
    from workbench.export.advice_md import advice_section

    analysis, _ = session_analysis(h200_home, H200_RUNS["L0"])
    text = "\n".join(advice_section(analysis.advice))
    assert "(layer L4)" in text and "(layer L4). (layer L4)" not in text
    assert text.count("(layer L4)") == sum("(layer L4)" in f.action for f in analysis.advice)
