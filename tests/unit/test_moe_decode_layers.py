"""The dense layers on the MoE decoders (issue 20), on CPU: which layers apply and what a range
skips, parity of every new stack (eager vs static vs compiled) at the tiny presets, the
attention kernels with gpt-oss's sliding window and sinks, device-side routing replay, and no
host synchronisation in the graph-capturable dispatch. GPU-only paths are in
test_moe_decode_gpu.py."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from workloads import catalog
from workloads.errors import WorkbenchError
from workloads.gptoss import create_workload as create_gptoss
from workloads.layers import LayerOutcome, apply_layers, with_skipped
from workloads.layers import moe_attention as ma
from workloads.layers import moe_experts as mx
from workloads.layers.moe_apply import apply_moe_compile
from workloads.layers.moe_block import moe_blocks
from workloads.moe import create_workload as create_moe
from workloads.parity import compare

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")
CREATE = {"moe": create_moe, "gptoss": create_gptoss}


def build(workload: str, dtype: torch.dtype = torch.float32, **params: Any) -> Any:
    run = CREATE[workload]()
    run.build(CPU, dtype, {**catalog.get_preset(workload, "tiny"), **params}, seed=0)
    return run


def parity(workload: str, dtype: torch.dtype, stack: list[str], gemv: bool = False,
           compiled: bool = False) -> tuple[Any, Any, list[LayerOutcome]]:
    run = build(workload, dtype)
    inputs = run.make_inputs(0)
    outcomes: list[LayerOutcome] = []
    with torch.inference_mode():
        apply_layers(["L0"], run, CPU, [])
        reference = run.parity_outputs(inputs)
        apply_layers(stack, run, CPU, outcomes)
        if gemv:  # the CUDA decode path's op; off CUDA it runs its torch reference
            for block in moe_blocks(run.model):
                block.decode_gemv = True
        if compiled:  # L5's apply function itself (its catalog entry needs CUDA + triton)
            outcomes.append(LayerOutcome("L5", True, apply_moe_compile(run, CPU)))
        candidate = run.parity_outputs(inputs, reference.tokens)
        run.prepare(inputs)
        run.step(inputs)  # the timed step runs on the same runtime
    return run, compare(reference, candidate, run.compute_precision), outcomes


# ---- which layers apply, and what a range leaves out


def test_dense_decode_layers_apply_to_the_moe_decoders():
    for workload in ("moe", "gptoss"):
        assert catalog.parse_layers("L0-L4", workload) == ["L0", "L1", "L2", "L3", "L4"]
        assert catalog.parse_layers("L0-L5", workload) == ["L0", "L1", "L2", "L3", "L4", "L5",
                                                           "L5-moe-fp8"]


def test_a_range_names_the_layers_it_skips_and_why():
    selection = catalog.select_layers("L0-L4,L5-moe-fp8,L6-moe-grouped", "moe")
    assert selection.names == ["L0", "L1", "L2", "L3", "L4", "L5-moe-fp8", "L6-moe-grouped"]
    assert selection.skipped == {}
    selection = catalog.select_layers("L0-L6", "gptoss")
    assert set(selection.skipped) == {"L5-fp8", "L5-gemv", "L6-fp8kv", "L6-paged", "L6-spec"}
    assert selection.skipped["L5-gemv"] == ("left out of L0-L6: applies to dense only, not "
                                            "gptoss")
    dense = catalog.select_layers("L0-L6", "dense")
    assert set(dense.skipped) == {"L5-moe-fp8", "L6-moe-grouped"}
    # a layer named on its own is kept (and refused by the run), not reported as skipped
    explicit = catalog.select_layers("L0,L5-gemv", "moe")
    assert explicit.names == ["L0", "L5-gemv"] and explicit.skipped == {}


def test_an_explicit_layer_that_does_not_apply_is_refused():
    from profilers.runner import resolve_spec
    from workloads.spec import RunSpec

    with pytest.raises(WorkbenchError, match="does not apply to workload 'moe'"):
        resolve_spec(RunSpec(workload="moe", preset="tiny", layers=["L0", "L6-paged"]))


def test_skipped_layers_are_recorded_in_stack_order():
    outcomes = [LayerOutcome("L0", True), LayerOutcome("L2", True, "static"),
                LayerOutcome("L6-moe-grouped", True)]
    merged = with_skipped(outcomes, {"L5-gemv": "left out of L0-L6: dense only",
                                     "L0": "never shadows an applied layer"})
    assert [(o.name, o.applied) for o in merged] == [
        ("L0", True), ("L2", True), ("L5-gemv", False), ("L6-moe-grouped", True)]
    assert merged[2].reason == "left out of L0-L6: dense only"


def test_the_workloads_command_says_which_layers_apply(capsys):
    import argparse

    from workbench.cli.commands import cmd_workloads

    assert cmd_workloads(argparse.Namespace()) == 0
    out = capsys.readouterr().out
    gptoss = out[out.index("\ngptoss "):out.index("\nattention ")]
    assert "layers: L0, L1, L2, L3, L4, L5, L5-moe-fp8, L6-moe-grouped" in gptoss
    assert "  L4       CUDA graphs  [needs cuda]  [dense, moe, gptoss]" in out
    assert "  L6-paged Paged KV cache  [dense]" in out


def test_the_ladder_reads_the_catalog_for_the_moe_decoders():
    from workbench.api.ladder import default_layer_sets, select_layer_sets

    assert default_layer_sets("gptoss")[-1] == ["L0", "L1", "L2", "L3", "L4", "L5",
                                                "L5-moe-fp8", "L6-moe-grouped"]
    sets = select_layer_sets("L0;L0-L6", "moe")
    assert sets[0].skipped == {} and "L6-spec" in sets[1].skipped


# ---- parity of the new stacks at the tiny presets


@pytest.mark.parametrize("workload", ["moe", "gptoss"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("stack,gemv", [(["L2"], False), (["L3"], False), (["L2", "L3"], False),
                                        (["L1", "L2", "L3", "L6-moe-grouped"], False),
                                        (["L2", "L3", "L6-moe-grouped"], True)])
def test_static_and_attention_stacks_keep_parity(workload, dtype, stack, gemv):
    run, report, outcomes = parity(workload, dtype, stack, gemv=gemv)
    assert report.ok, (workload, dtype, stack, report)
    if dtype == torch.float32:  # the same math in another order: far inside fp32's 1e-4
        assert report.max_rel_err < 1e-5, report
    assert all(o.applied for o in outcomes), outcomes
    runtime = run.extra()["runtime"]
    assert runtime["static_cache"] == ("L2" in stack)
    kernel = run.model.attns[0].kernel
    assert kernel is (ma.sdpa_attention if "L3" in stack else ma.eager_attention)
    replay = run.extra()["routing_parity"]
    assert replay["token_layer_choices"] == sum(
        r.shape[0] for layer in run._routes for r in layer)


@pytest.mark.slow
@pytest.mark.parametrize("workload", ["moe", "gptoss"])
def test_compiled_decode_keeps_parity_on_cpu(workload):
    run, report, outcomes = parity(workload, torch.float32, ["L2", "L3", "L6-moe-grouped"],
                                   compiled=True)
    assert report.ok and report.max_rel_err < 1e-5, report
    assert "decode compiled (default)" in str(outcomes[-1].reason)
    assert run.extra()["runtime"]["compile_mode"] == "default"
    assert run.extra()["routing_parity"]["flipped"] == 0  # fp32: the same experts


def test_l4_and_l5_turn_on_the_sync_free_dispatch():
    from workloads.layers.moe_apply import apply_moe_graphs

    run = build("moe")
    note = apply_moe_graphs(run, CPU)
    assert "turned on L6-moe-grouped's sorted dispatch" in str(note)
    assert all(b.dispatch == "sorted" for b in moe_blocks(run.model))
    assert run.runtime.static and run.runtime.graphs
    run = build("gptoss", compile_mode="reduce-overhead")
    note = apply_moe_compile(run, CPU)
    assert "decode compiled (reduce-overhead)" in str(note) and "sorted dispatch" in str(note)
    assert run.runtime.compile_prefill_mode is None  # a decode run does not compile prefill
    run = build("gptoss", mode="prefill")
    apply_moe_compile(run, CPU)
    assert run.runtime.compile_prefill_mode == "default"
    with pytest.raises(WorkbenchError, match="not a torch.compile mode"):
        apply_moe_compile(build("moe", compile_mode="fast"), CPU)


def test_unmet_layers_skip_is_a_moe_run_option():
    run = build("moe", unmet_layers="skip")
    outcomes: list[LayerOutcome] = []
    apply_layers(["L0", "L4", "L6-moe-grouped"], run, CPU, outcomes)
    assert [(o.name, o.applied) for o in outcomes] == [("L0", True), ("L4", False),
                                                       ("L6-moe-grouped", True)]
    assert "CUDA" in str(outcomes[1].reason)
    with pytest.raises(WorkbenchError, match="unmet_layers"):
        build("moe", unmet_layers="maybe")


# ---- attention: window, sinks, the sink slot, chunked eager


def attention_case(seq: int, window: int, sinks: bool, start: int = 0
                   ) -> tuple[torch.Tensor, Any, torch.Tensor | None, int]:
    g = torch.Generator().manual_seed(seq + window)
    batch, heads, kv_heads, dim, capacity = 2, 8, 2, 16, 65
    q = torch.randn(batch, heads, seq, dim, generator=g)
    k_buf = torch.zeros(batch, kv_heads, capacity, dim)
    v_buf = torch.zeros(batch, kv_heads, capacity, dim)
    end = start + seq
    k_buf[:, :, :end] = torch.randn(batch, kv_heads, end, dim, generator=g)
    v_buf[:, :, :end] = torch.randn(batch, kv_heads, end, dim, generator=g)
    view = ma.KVView(k_buf[:, :, :end], v_buf[:, :, :end], k_buf, v_buf, start, capacity - 1)
    return q, view, torch.randn(heads, generator=g) * 2 if sinks else None, end


def reference_attention(q: torch.Tensor, view: Any, window: int, sinks: torch.Tensor | None
                        ) -> torch.Tensor:
    """float64, one head at a time, the sink as an extra softmax term."""
    batch, heads, seq, dim = q.shape
    keys, values = view.keys.double(), view.values.double()
    group = heads // keys.shape[1]
    out = torch.empty(batch, heads, seq, dim, dtype=torch.float64)
    for h in range(heads):
        scores = q[:, h].double() @ keys[:, h // group].transpose(-1, -2) / dim ** 0.5
        for i in range(seq):
            pos = view.start + i
            for j in range(keys.shape[2]):
                if j > pos or (window and j <= pos - window):
                    scores[:, i, j] = float("-inf")
        top = scores.amax(-1, keepdim=True)
        weights = (scores - top).exp()
        denominator = weights.sum(-1, keepdim=True)
        if sinks is not None:
            denominator = denominator + (sinks[h].double() - top).exp()
        out[:, h] = (weights / denominator) @ values[:, h // group]
    return out


@pytest.mark.parametrize("window", [0, 8])
@pytest.mark.parametrize("sinks", [False, True])
def test_attention_kernels_agree_with_a_float64_reference(window, sinks):
    q, view, sink, end = attention_case(40, window, sinks)
    want = reference_attention(q, view, window, sink)
    kernels = {"eager": ma.eager_attention(q, view, window, sink),
               "sdpa": ma.sdpa_attention(q, view, window, sink),
               "flex (eager reference)": ma.flex_prefill(q, view.keys, view.values, window,
                                                         sink, compiled=False)}
    for name, got in kernels.items():
        error = float((got.double() - want).norm() / want.norm())
        assert error < 1e-6, (name, error)
    # decode at a tensor position over the whole buffer (L2), sink through the zero slot
    q1, view1, sink1, end = attention_case(1, window, sinks, start=39)
    want = reference_attention(q1, view1, window, sink1)
    static = ma.KVView(view1.k_buf, view1.v_buf, view1.k_buf, view1.v_buf,
                       torch.tensor([39]), view1.sink_slot)
    for kernel in (ma.eager_attention, ma.sdpa_attention):
        got = kernel(q1, static, window, sink1)
        assert float((got.double() - want).norm() / want.norm()) < 1e-6, kernel
    assert float(view1.k_buf[:, :, -1].abs().max()) == 0.0  # the sink slot stays zero


def test_eager_attention_in_query_chunks_is_the_same_function(monkeypatch):
    q, view, sink, _ = attention_case(40, 8, True)
    whole = ma.eager_attention(q, view, 8, sink)
    monkeypatch.setattr(ma, "EAGER_SCORE_BYTES", 2 * 8 * 40 * 4 * 7)  # 7 query rows a chunk
    assert torch.allclose(ma.eager_attention(q, view, 8, sink), whole, atol=1e-6)


def test_a_large_sink_takes_all_the_probability():
    q, view, sink, _ = attention_case(12, 0, True)
    assert sink is not None
    sink.fill_(60.0)
    for kernel in (ma.eager_attention, ma.sdpa_attention):
        assert float(kernel(q, view, 0, sink).abs().max()) < 1e-6


# ---- routing replay on the device


def test_route_replay_uses_the_forced_experts_and_counts_each_call_once():
    run = build("moe")
    block = moe_blocks(run.model)[0]
    block.dispatch, block.backend = "sorted", "bmm"
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 1, 64, generator=g)
    own = block.route(x.reshape(3, 64))[0]
    forced = torch.stack([torch.randperm(64, generator=g)[:6] for _ in range(3)])
    forced[0] = own[0]  # token 0 keeps its own choice: exactly two tokens flip
    block.enable_replay(8)
    assert block.replay_idx is not None and block.replay_on is not None
    block.replay_idx[:3].copy_(forced)
    block.replay_on.fill_(True)
    out = block(x)
    block(x)  # a second call (a graph warm-up, say) overwrites the count, does not add
    assert block.replay_flips is not None
    assert block.replay_flips[:3].tolist() == [False, True, True]
    flat = x.reshape(3, 64)
    scores = torch.sigmoid(torch.nn.functional.linear(flat.float(), block.router_w.float()))
    weights = scores.gather(-1, forced)
    weights = weights / weights.sum(-1, keepdim=True)
    want = mx.experts_loop(flat, forced, weights.to(flat.dtype), block.weights)
    shared_gate, shared_up = torch.nn.functional.linear(flat, block.shared_w13).chunk(2, -1)
    want = want + torch.nn.functional.linear(torch.nn.functional.silu(shared_gate) * shared_up,
                                             block.shared_w2)
    assert torch.allclose(out.reshape(3, 64), want, atol=1e-5)
    block.replay_on.fill_(False)
    assert int((block.route(flat)[0] != own).sum()) == 0
    assert not block.replay_flips[:3].any()


# ---- no host synchronisation in the graph-capturable dispatch


FORBIDDEN = {"item", "nonzero", "tolist", "_local_scalar_dense", "bincount", "unique",
             "unique_consecutive", "masked_select", "cpu"}


def traced_decode_ops(run: Any) -> list[str]:
    """Trace the static decode step with fullgraph=True (any host sync or data-dependent shape
    breaks the graph and raises) and return the names of what the graph calls."""
    graphs: list[Any] = []

    def record(gm: Any, example_inputs: Any) -> Any:
        graphs.append(gm)
        return gm.forward

    pos = torch.tensor([run.shape["prompt_len"]])
    tokens = torch.zeros(run.shape["batch"], 1, dtype=torch.long)
    step = torch.compile(lambda t, p: run.model(t, p, all_logits=True), backend=record,
                         fullgraph=True, dynamic=False)
    with torch.inference_mode():
        step(tokens, pos)
    assert len(graphs) == 1
    return [str(getattr(node.target, "__name__", node.target)) for node in graphs[0].graph.nodes
            if node.op in ("call_function", "call_method")]


@pytest.mark.parametrize("workload", ["moe", "gptoss"])
@pytest.mark.parametrize("path", ["grouped", "gemv"])
def test_graph_capturable_dispatch_has_no_host_sync(workload, path):
    run = build(workload, torch.bfloat16)
    with torch.inference_mode():
        apply_layers(["L0", "L2", "L3", "L6-moe-grouped"], run, CPU, [])
        for block in moe_blocks(run.model):
            block.decode_gemv = path == "gemv"
            block.enable_replay(64)  # the parity replay is part of the captured step
    ops = traced_decode_ops(run)
    assert not FORBIDDEN & set(ops), sorted(FORBIDDEN & set(ops))
    assert ("experts_gemv" in " ".join(ops)) == (path == "gemv")


def test_the_masked_loop_cannot_be_traced_whole():
    """The check above can fail: the L0 loop over experts syncs the host per expert."""
    run = build("moe")
    apply_layers(["L0", "L2"], run, CPU, [])
    with pytest.raises(Exception, match="(?i)data.dependent|nonzero|graph break|Unsupported"):
        traced_decode_ops(run)


def test_fp8_experts_count_one_byte_per_weight():
    run = build("gptoss", torch.bfloat16, batch=1)
    bf16 = run.bytes_per_step()
    for block in moe_blocks(run.model):  # what L5-moe-fp8 leaves on a GPU with FP8 GEMMs
        w = block.weights
        w.w13_q, w.w13_s = mx.quantize_rows(w.w13)
        w.w2_q, w.w2_s = mx.quantize_rows(w.w2)
    s = run.shape
    expert = 3 * s["hidden"] * s["moe_inter"]
    saved = s["layers"] * s["top_k"] * (expert - 4 * (2 * s["moe_inter"] + s["hidden"]))
    assert bf16 - run.bytes_per_step() == pytest.approx(saved)
