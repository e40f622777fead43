"""L3's one-token decode path (fused RoPE + KV write, split-KV attention over the cache in
place) and L5-gemv / L5-fp8's fused add + RMSNorm and SwiGLU, on the CPU through the ops'
torch references: they compute what the unfused model computes, on static and paged, bf16
and FP8 caches, and trace into one graph. The Triton kernels themselves are checked in
test_triton_interpret.py (interpreter) and test_decode_kernels_gpu.py (GPU)."""

from __future__ import annotations

import weakref

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workloads import catalog, dense, estimate
from workloads.errors import WorkbenchError
from workloads.layers import APPLY_FUNCTIONS, lowbit, triton_decode_attention
from workloads.layers.attention import apply_attention
from workloads.layers.kv_cache import FP8_KV_DTYPE, KVCache, PagedKVCache

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")


def build(stack: list[str], dtype: torch.dtype = torch.float32, **overrides
          ) -> dense.DenseWorkload:
    workload = dense.DenseWorkload()
    params = {**catalog.get_preset("dense", "tiny"), **overrides}
    workload.build(CPU, dtype, params, seed=0)
    for name in ["L0", *stack]:  # apply functions directly: L5-* require CUDA in the catalog
        APPLY_FUNCTIONS[name](workload, CPU)
    return workload


def sdpa_oracle(q, keys, values):
    group = q.shape[1] // keys.shape[1]
    keys = keys.double().repeat_interleave(group, 1)
    values = values.double().repeat_interleave(group, 1)
    return F.scaled_dot_product_attention(q.double()[:, :, None], keys, values)[:, :, 0]


@pytest.mark.parametrize("paged", [False, True])
@pytest.mark.parametrize("window", [0, 5])
def test_reference_decode_attention_reads_the_cache_as_sdpa_would(paged, window):
    gen = torch.Generator().manual_seed(0)
    batch, heads, kv_heads, dim, capacity, position = 2, 8, 2, 16, 48, 20
    q = torch.randn(batch, heads, dim, generator=gen)
    keys = torch.randn(batch, kv_heads, capacity, dim, generator=gen)
    values = torch.randn(batch, kv_heads, capacity, dim, generator=gen)
    table, k_store, v_store = None, keys, values
    if paged:  # scatter the sequence over shuffled 16-slot blocks
        table = torch.randperm(batch * 3, generator=gen).view(batch, 3)
        k_store = torch.zeros(batch * 3, 16, kv_heads, dim)
        v_store = torch.zeros_like(k_store)
        for b in range(batch):
            for slot in range(capacity):
                k_store[table[b, slot // 16], slot % 16] = keys[b, :, slot]
                v_store[table[b, slot // 16], slot % 16] = values[b, :, slot]
    lo = max(0, position + 1 - window) if window else 0
    out = triton_decode_attention.decode_attention_reference(
        q, k_store, v_store, torch.tensor([position]), table, None, window)
    expected = sdpa_oracle(q, keys[:, :, lo:position + 1], values[:, :, lo:position + 1])
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)


def test_choose_splits_fills_the_sms_and_keeps_splits_long():
    choose = triton_decode_attention.choose_splits
    assert choose(1, 8, 8448, 132) == 33  # context 8192 at batch 1: ~2 programs per SM
    assert choose(1, 8, 1024, 132) == 4  # capacity caps it: >= 256 keys per split
    assert choose(32, 8, 8448, 132) == 2  # batch 32 fills the SMs by itself
    assert choose(1, 8, 200, 132) == 1  # short cache: one split, no combine kernel


@pytest.mark.parametrize("paged, fp8", [(False, False), (True, False), (False, True),
                                        (True, True)])
@torch.inference_mode()
def test_rope_kv_write_writes_what_apply_rope_and_update_write(paged, fp8):
    """The fused op against the model's own unfused code path on the same cache type."""
    gen = torch.Generator().manual_seed(1)
    batch, heads, kv_heads, dim, max_seq, position = 2, 4, 2, 16, 40, 21
    kind = PagedKVCache if paged else KVCache
    caches = [kind(1, batch, kv_heads, max_seq, dim, CPU, torch.bfloat16, fp8=fp8)
              for _ in range(2)]
    if fp8:
        for cache in caches:
            cache.codec.scales[0].fill_(0.03)
    q = torch.randn(batch, heads, dim, generator=gen).bfloat16()
    k = torch.randn(batch, kv_heads, dim, generator=gen).bfloat16()
    v = torch.randn(batch, kv_heads, dim, generator=gen).bfloat16()
    cos_table, sin_table = dense.rope_tables(dim, max_seq, 10000.0, CPU)
    cos, sin = cos_table[position:position + 1], sin_table[position:position + 1]
    pos = torch.tensor([position])
    view = caches[0].decode_view(0)
    q_out = torch.ops.aiperf.rope_kv_write(q, k, v, cos, sin, pos, view.keys, view.values,
                                           view.block_table, view.scale)
    q_ref = dense.apply_rope(q[:, :, None], cos, sin)[:, :, 0]
    caches[1].update(0, pos, dense.apply_rope(k[:, :, None], cos, sin), v[:, :, None])
    assert torch.equal(q_out, q_ref)
    for a, b in ((caches[0].keys[0], caches[1].keys[0]),
                 (caches[0].values[0], caches[1].values[0])):
        assert a.dtype == (FP8_KV_DTYPE if fp8 else torch.bfloat16)
        assert torch.equal(a.view(torch.uint8), b.view(torch.uint8))
        assert a.view(torch.uint8).count_nonzero() > 0


def count_calls(monkeypatch, module, name):
    calls = []
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


@pytest.mark.parametrize("cache_layers", [[], ["L6-paged"], ["L6-fp8kv"],
                                          ["L6-paged", "L6-fp8kv"]])
@torch.inference_mode()
def test_fast_decode_matches_the_sdpa_decode(monkeypatch, cache_layers):
    """The same stack with L3's decode path on and off: same logits at every step."""
    calls = count_calls(monkeypatch, triton_decode_attention, "decode_attention_reference")
    runs = []
    for fast in (True, False):
        workload = build(["L2", "L3", *cache_layers])
        workload.set_fast_decode(fast)
        inputs = workload.make_inputs(0)
        runs.append(workload.parity_outputs(inputs).logits)
    layers = catalog.get_preset("dense", "tiny")["layers"]
    new_tokens = catalog.get_preset("dense", "tiny")["new_tokens"]
    assert len(calls) == layers * (new_tokens - 1)  # every decode step, every layer
    tolerance = 1e-2 if "L6-fp8kv" in cache_layers else 1e-5  # fp8: one e4m3 ulp of K/V
    torch.testing.assert_close(runs[0], runs[1], rtol=tolerance, atol=tolerance)


@torch.inference_mode()
def test_fast_decode_with_python_int_positions_and_a_window():
    """L3 without L2: the position is a Python int and the cache is sliced by update()."""
    logits = []
    for fast in (True, False):
        workload = build(["L3"], window=6)
        workload.set_fast_decode(fast)
        logits.append(workload.parity_outputs(workload.make_inputs(0)).logits)
    torch.testing.assert_close(logits[0], logits[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer, dtype", [("L5-gemv", torch.bfloat16),
                                          ("L5-fp8", torch.float32), ("L5-fp8", torch.bfloat16)])
@torch.inference_mode()
def test_norms_inside_the_gemvs_compute_the_unfused_decoder(layer, dtype):
    """The RMSNorms applied by the projections (weights folded) and the residual adds by the
    output projections: the logits of the separate norm and add modules, up to rounding
    (x * 1/rms rounded before the GEMV, or the GEMV's sum scaled after)."""
    logits = []
    for fused in (True, False):
        workload = build(["L2", "L3", layer], dtype=dtype)
        workload.set_fused_norms(fused)
        logits.append(workload.parity_outputs(workload.make_inputs(0)).logits.float())
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(logits[0], logits[1], rtol=tolerance, atol=tolerance)


def test_folding_moves_the_norm_gains_into_the_projections():
    workload = build(["L2"])
    model = workload.model
    gen = torch.Generator().manual_seed(4)
    norms = [model.norm] + [n for b in model.blocks for n in (b.attn_norm, b.mlp_norm)]
    for norm in norms:
        norm.weight.data = torch.rand(norm.weight.shape, generator=gen) + 0.5
    inputs = workload.make_inputs(0)
    with torch.inference_mode():
        before = model(inputs, 0)
        assert lowbit.fold_norm_weights(model) and not lowbit.fold_norm_weights(model)
        after = model(inputs, 0)
    assert all(torch.equal(n.weight, torch.ones_like(n.weight)) for n in norms)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


def test_fused_norms_refuse_plain_linears():
    workload = build(["L2"])
    with pytest.raises(ValueError, match="GEMV"):
        workload.set_fused_norms(True)


def test_gemv_and_fp8_layers_turn_on_the_fused_ops():
    for layer in ("L5-gemv", "L5-fp8"):
        workload = build(["L2", "L3", layer], dtype=torch.bfloat16)
        assert workload.model.fused_norms
        assert all(block.mlp.fused_act and block.attn.fast_decode
                   for block in workload.model.blocks)


@pytest.mark.parametrize("stack", [["L5-gemv"], ["L5-fp8"], ["L6-paged", "L6-fp8kv", "L5-gemv"]])
def test_the_decode_step_with_every_fused_op_traces_as_one_graph(stack):
    workload = build(["L2", "L3", *stack], dtype=torch.bfloat16, batch=1)
    model = workload.model
    tokens, pos = torch.zeros(1, 1, dtype=torch.long), torch.tensor([5])
    with torch.inference_mode():
        explained = torch._dynamo.explain(lambda t, p: model(t, p, all_logits=True))(tokens,
                                                                                   pos)
    assert explained.graph_break_count == 0, explained.break_reasons[:1]
    targets = {str(node.target) for graph in explained.graphs for node in graph.graph.nodes}
    assert {"aiperf.rope_kv_write", "aiperf.decode_attention", "aiperf.swiglu"} <= targets
    if stack[-1] == "L5-gemv":  # every norm inside a GEMV: no rsqrt left in the step
        assert "aiperf.gemv" in targets
        assert not any("rsqrt" in target for target in targets)


@pytest.mark.slow
def test_compiled_decode_writes_the_cache_in_place():
    """Inductor (CPU) calls the mutating RoPE + KV write on the cache tensors themselves: no
    clone of the cache per layer (at context 8192 that would be 33.5 MB per layer per step),
    and the compiled step leaves the cache as the eager step does."""
    from torch._inductor.utils import run_and_get_code

    workload = build(["L2", "L3", "L6-paged", "L5-gemv"], dtype=torch.bfloat16, batch=1,
                     layers=1)
    model = workload.model
    with torch.inference_mode():
        model(workload.make_inputs(0), 0)
        before = [k.clone() for k in model.cache.keys]
        tokens, pos = torch.tensor([[7]]), torch.tensor([32])
        eager = model(tokens, pos, all_logits=True)
        after_eager = [k.clone() for k in model.cache.keys]
        for k, k0 in zip(model.cache.keys, before, strict=True):
            k.copy_(k0)
        compiled = torch.compile(lambda t, p: model(t, p, all_logits=True), dynamic=False)
        out, code = run_and_get_code(compiled, tokens, pos)
    assert torch.equal(out, eager)
    assert all(torch.equal(a, b) for a, b in zip(model.cache.keys, after_eager, strict=True))
    source = "\n".join(code)
    assert "aiperf.rope_kv_write" in source
    assert "clone" not in source and "copy_" not in source


def test_replace_linears_frees_each_weight_before_the_next():
    """With a list of the modules, every bf16 weight stayed alive until the last FP8 copy
    existed: the 8B conversion peaked at bf16 + FP8 (23.5 GiB)."""
    model = nn.Sequential(*(nn.Linear(32, 32, bias=False) for _ in range(4)))
    refs = [weakref.ref(layer.weight) for layer in model]
    alive_at_each_make = []

    def make(weight: torch.Tensor) -> nn.Module:
        alive_at_each_make.append(sum(ref() is not None for ref in refs))
        return lowbit.Fp8Linear(weight, per_row=True)

    assert lowbit._replace_linears(model, make) == 4
    assert alive_at_each_make == [3, 2, 1, 0]  # the ones not converted yet, no more
    assert all(ref() is None for ref in refs)


def test_quantize_fp8_in_row_chunks_equals_the_whole_matrix(monkeypatch):
    gen = torch.Generator().manual_seed(2)
    weight = (torch.randn(37, 64, generator=gen) * torch.logspace(-3, 1, 37)[:, None]).bfloat16()
    monkeypatch.setattr(lowbit, "QUANTIZE_ROWS", 5)  # 8 chunks, the last one short
    for per_row in (True, False):
        wq, scale = lowbit.quantize_fp8(weight, per_row)
        w32 = weight.float()  # the one-pass formula the chunks must reproduce
        amax = w32.abs().amax(dim=1) if per_row else w32.abs().amax().reshape(1)
        expected_scale = amax.clamp_min(1e-12) / lowbit.FP8_MAX
        expected = (w32 / (expected_scale[:, None] if per_row else expected_scale)).clamp(
            -lowbit.FP8_MAX, lowbit.FP8_MAX).to(lowbit.FP8_DTYPE)
        assert torch.equal(scale, expected_scale)
        assert torch.equal(wq.view(torch.uint8), expected.view(torch.uint8))


def test_bytes_per_step_counts_fp8_weights_and_fp8_kv_separately():
    shape = {**catalog.get_preset("dense", "llama-3.1-8b"), "prompt_len": 8192,
             "max_seq": 8448}
    context = shape["prompt_len"] + 1
    kv = estimate.kv_bytes_per_token(shape) * (context + 1)
    total = estimate.decode_bytes(shape, context)

    def step_bytes(layers: list[str]) -> float:
        workload = dense.DenseWorkload()
        workload.shape, workload.mode = dense.resolve_shape(shape), "decode"
        workload.draft = None
        workload.runtime = type("R", (), {"weight_bytes_ratio": 0.5 if "L5-fp8" in layers
                                          else 1.0})()
        workload._cache_fp8 = "L6-fp8kv" in layers
        return workload.bytes_per_step()

    assert step_bytes([]) == total
    assert step_bytes(["L5-fp8"]) == (total - kv) / 2 + kv  # the KV read stays bf16
    assert step_bytes(["L6-fp8kv"]) == total - kv / 2
    assert step_bytes(["L5-fp8", "L6-fp8kv"]) == (total - kv) / 2 + kv / 2


def test_l3_notes_what_runs_the_decode(monkeypatch):
    workload = build([])
    assert "torch reference on CPU" in apply_attention(workload, CPU)
    monkeypatch.setattr("workloads.layers.attention.has_triton", lambda: False)
    workload = build([])
    note = apply_attention(workload, torch.device("cuda"))
    assert "no triton" in note
    assert not any(block.attn.fast_decode for block in workload.model.blocks)
    workload = build([], decode_kernel="sdpa")
    assert "decode_kernel=sdpa" in apply_attention(workload, CPU)
    assert not any(block.attn.fast_decode for block in workload.model.blocks)
    with pytest.raises(WorkbenchError, match="decode_kernel"):
        build([], decode_kernel="flash")


def test_fused_op_references_are_the_model_modules():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 64, generator=gen)
    norm = dense.RMSNorm(64, 1e-5, CPU, torch.float32)
    norm.weight.data = torch.randn(64, generator=gen)
    assert torch.equal(torch.ops.aiperf.rms_norm(x, norm.weight, norm.eps), norm(x))
    unit = dense.RMSNorm(64, 1e-5, CPU, torch.float32)
    assert torch.equal(torch.ops.aiperf.rms_norm(x, None, 1e-5), unit(x))
    gate_up = torch.randn(2, 1, 40, generator=gen)
    assert torch.equal(torch.ops.aiperf.swiglu(gate_up),
                       F.silu(gate_up[..., :20]) * gate_up[..., 20:])


@pytest.mark.parametrize("rows", [1, 5, 20])
def test_gemv_linear_applies_the_norm_and_the_residual(rows):
    """M <= 16 through the GEMV op (its CPU reference here), M > 16 through rms_norm + addmm:
    both are norm(x) @ W^T + residual."""
    gen = torch.Generator().manual_seed(5)
    weight = torch.randn(48, 64, generator=gen)
    x, residual = torch.randn(rows, 1, 64, generator=gen), torch.randn(rows, 1, 48,
                                                                        generator=gen)
    norm = dense.RMSNorm(64, 1e-5, CPU, torch.float32)
    expected = norm(x) @ weight.t() + residual
    for linear, bound in ((lowbit.GemvLinear(weight), 1e-6),
                          (lowbit.Fp8Linear(weight, per_row=True), 0.05)):  # e4m3 weights
        out = linear(x, rms_eps=1e-5, residual=residual)
        assert float((out - expected).norm() / expected.norm()) < bound
        torch.testing.assert_close(linear(x), linear(x, rms_eps=0.0, residual=None))


@torch.inference_mode()
def test_tensor_parallel_output_projections_add_the_residual_once(tmp_path):
    """Under tensor parallelism o_proj and down_proj are all-reduced wrappers: with the fused
    norms they get the residual, added after the sum (one gloo rank here: the sum is the
    local output, and the logits must equal the unsharded model's)."""
    import torch.distributed as dist

    from workloads.layers.tensor_parallel import shard_block

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        logits = []
        for sharded in (True, False):
            workload = build([])
            if sharded:
                for block in workload.model.blocks:
                    shard_block(block, 0, 1)
            for name in ("L2", "L3", "L5-fp8"):
                APPLY_FUNCTIONS[name](workload, CPU)
            assert workload.model.fused_norms
            logits.append(workload.parity_outputs(workload.make_inputs(0)).logits)
        torch.testing.assert_close(logits[0], logits[1], rtol=1e-5, atol=1e-5)
    finally:
        dist.destroy_process_group()
