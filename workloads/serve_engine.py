"""An in-process serving engine: continuous batching with chunked prefill over the dense model.

Each iteration (``step``) builds one ragged batch under a token budget (``max_batch_tokens``):
first one token for every running request that is decoding, then prefill chunks of at most
``prefill_chunk`` prompt tokens from requests still prefilling (oldest first), then newly
admitted requests while a KV slot is free (``max_running`` slots). All tokens of the batch go
through the projections and MLPs as one [1, N, hidden] tensor (the GEMMs are shared: that is
the point of batching); attention is per request against its own KV slot — decode rows batched
with a length mask, prefill chunks one by one with a causal mask offset by the chunk's start.
A request leaves the batch the iteration its last token is produced and its slot is reused
by the next one (continuous batching).

The engine reuses the weights of a ``workloads.dense.DenseDecoder`` (embedding, RMSNorms,
projections, SwiGLU, LM head, RoPE tables) and keeps its own slot KV cache
[max_running, kv_heads, max_seq, head_dim] per layer. Greedy sampling; argmax on the device,
token ids read back once per iteration (that read is the iteration's synchronization point).

Host cost per iteration (the engine is eager, so on a GPU it is bound by the host): one
host-to-device copy of all the iteration's metadata (``_plan``), one read-back, a fixed number
of kernels per layer whatever the number of decoding requests (the decode rows are batched),
plus a few per prefill chunk. Attention avoids cuDNN's SDPA backend (``SDPA_BACKENDS``).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from workloads.dense import apply_rope

# Every SDPA backend but cuDNN's. cuDNN attention (the first choice on Hopper for these masked
# calls) builds and caches an execution plan per input shape; a serving engine's shapes change
# every iteration (running requests, longest context, chunk extents), so nearly every call paid
# a plan build: ~50 ms of host time per iteration on an H200, whatever the batch. Flash (no
# masks on CUDA: skipped there; the CPU's kernel), memory-efficient and math have no per-shape
# setup. On the CPU this is the same choice as before.
SDPA_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH,
                 SDPBackend.OVERRIDEABLE]


@dataclass
class ServeRequest:
    rid: int
    prompt: list[int]
    max_new: int
    arrival_s: float = 0.0
    slot: int | None = None
    prefilled: int = 0  # prompt tokens already in the KV cache
    output: list[int] = field(default_factory=list)
    token_times_s: list[float] = field(default_factory=list)
    logits: list[torch.Tensor] = field(default_factory=list)  # only when recording
    # Teacher forcing (the parity check): the engine feeds these tokens back instead of its
    # own argmax, so its logits compare with a reference position by position even after a
    # near-tie flips one token in bf16 (without it one flip derails the rest of the decode).
    forced: list[int] | None = None

    @property
    def done(self) -> bool:
        return len(self.output) >= self.max_new


@dataclass
class Segment:
    request: ServeRequest
    tokens: list[int]
    start: int  # cache position of the first token
    emits: bool  # its last token's logits produce an output token


class ServeEngine:
    def __init__(self, model: Any, shape: dict[str, Any], max_running: int,
                 max_batch_tokens: int, prefill_chunk: int, record_logits: bool = False
                 ) -> None:
        self.model, self.shape = model, shape
        self.max_running, self.max_batch_tokens = max_running, max_batch_tokens
        self.prefill_chunk, self.record_logits = prefill_chunk, record_logits
        self.heads, self.kv_heads = shape["heads"], shape["kv_heads"]
        self.head_dim = shape["hidden"] // shape["heads"]
        weight = model.embed
        cache_shape = (max_running, self.kv_heads, shape["max_seq"], self.head_dim)
        self.keys = [torch.zeros(cache_shape, device=weight.device, dtype=weight.dtype)
                     for _ in range(shape["layers"])]
        self.values = [torch.zeros_like(k) for k in self.keys]
        self.waiting: deque[ServeRequest] = deque()
        self.running: list[ServeRequest] = []
        self.free_slots = list(range(max_running))
        self.iterations = 0
        # Grouped-query attention as rows (CUDA): the query heads that share a KV head are
        # laid out as that KV head's query rows (the same dot products, the same mask for
        # each), so no enable_gqa: the memory-efficient kernel takes none (it would fall back
        # to the math path, which copies K and V per query head and launches ~8 kernels).
        # Elsewhere enable_gqa, as before (the CPU's flash kernel takes it; bit-identical).
        self.grouped_rows = weight.device.type == "cuda"

    def add(self, request: ServeRequest) -> None:
        self.waiting.append(request)

    def idle(self) -> bool:
        return not self.waiting and not self.running

    def abort_all(self) -> list[ServeRequest]:
        """Drop every request still queued or running (the load test's time bound)."""
        dropped = list(self.waiting) + self.running
        self.waiting.clear()
        self.running.clear()
        self.free_slots = list(range(self.max_running))
        return dropped

    # ---- scheduling --------------------------------------------------------------------
    def _schedule(self) -> list[Segment]:
        budget = self.max_batch_tokens
        segments: list[Segment] = []
        for request in self.running:  # decode first: running requests never starve
            if request.prefilled == len(request.prompt) and budget > 0:
                position = len(request.prompt) + len(request.output) - 1
                segments.append(Segment(request, [request.output[-1]], position, True))
                budget -= 1
        while self.waiting and self.free_slots:
            request = self.waiting.popleft()
            request.slot = self.free_slots.pop(0)
            self.running.append(request)
        for request in self.running:
            if request.prefilled < len(request.prompt) and budget > 0:
                size = min(self.prefill_chunk, len(request.prompt) - request.prefilled, budget)
                chunk = request.prompt[request.prefilled:request.prefilled + size]
                emits = request.prefilled + size == len(request.prompt)
                segments.append(Segment(request, chunk, request.prefilled, emits))
                budget -= size
        return segments

    def step(self) -> list[ServeRequest]:
        """One iteration; returns the requests that finished in it."""
        segments = self._schedule()
        if not segments:
            return []
        logits = self._forward(segments)
        emitting = [s for s in segments if s.emits]
        tokens = logits.argmax(-1).tolist() if emitting else []
        now = time.perf_counter()
        finished = []
        for segment in segments:
            if not segment.emits:
                segment.request.prefilled += len(segment.tokens)
        for row, (segment, token) in enumerate(zip(emitting, tokens, strict=True)):
            request = segment.request
            request.prefilled = len(request.prompt)
            if request.forced is not None:
                token = request.forced[len(request.output)]
            request.output.append(int(token))
            request.token_times_s.append(now)
            if self.record_logits:
                request.logits.append(logits[row].float())
            if request.done:
                finished.append(request)
        for request in finished:
            self.running.remove(request)
            assert request.slot is not None
            self.free_slots.append(request.slot)
        self.iterations += 1
        return finished

    # ---- the ragged forward --------------------------------------------------------------
    def _project_qk_v(self, attn: Any, x: torch.Tensor, count: int
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """([1, heads + kv_heads, count, head_dim] q and k side by side, v [1, count, kv_dim]).
        q and k share the RoPE tables, so they are rotated as one tensor (elementwise: the same
        numbers as rotating each, in half the kernels)."""
        q_dim, kv_dim = self.heads * self.head_dim, self.kv_heads * self.head_dim
        fused = getattr(attn, "qkv_proj", None)
        if fused is not None:  # the dense L2 layer fuses q/k/v into one projection
            qk, v = fused(x).split([q_dim + kv_dim, kv_dim], dim=-1)
        else:
            qk, v = torch.cat([attn.q_proj(x), attn.k_proj(x)], dim=-1), attn.v_proj(x)
        return qk.view(1, count, self.heads + self.kv_heads, self.head_dim).transpose(1, 2), v

    @torch.inference_mode()
    def _forward(self, segments: list[Segment]) -> torch.Tensor:
        """Logits [segments that emit, vocab] of each emitting segment's last token."""
        model = self.model
        count = sum(len(s.tokens) for s in segments)
        plan = self._plan(segments, count)
        cos, sin = model.rope_cos[plan["positions"]], model.rope_sin[plan["positions"]]
        x = F.embedding(plan["tokens"], model.embed)
        heads, slots, positions = self.heads, plan["slots"], plan["positions"]
        with sdpa_kernel(SDPA_BACKENDS):
            for layer, block in enumerate(model.blocks):
                attn = block.attn
                qk, v = self._project_qk_v(attn, block.attn_norm(x), count)
                qk = apply_rope(qk, cos, sin)
                q, k = qk[:, :heads], qk[:, heads:]
                v = v.view(1, count, self.kv_heads, self.head_dim)
                self.keys[layer][slots, :, positions] = k[0].transpose(0, 1)
                self.values[layer][slots, :, positions] = v[0]
                attended = self._attend(layer, plan, q, count)
                x = x + attn.o_proj(attended)
                x = x + block.mlp(block.mlp_norm(x))
        if plan["last"] is None:  # no segment emits (prefill only): no LM head
            return x.new_empty(0, model.lm_head.weight.shape[0])
        return model.lm_head(model.norm(x[:, plan["last"]]))[0]

    def _plan(self, segments: list[Segment], count: int) -> dict[str, Any]:
        """Everything the forward indexes with, built once per iteration and shared by every
        layer, from ONE host-to-device copy (pinned and asynchronous on CUDA, so the step's
        only synchronization stays the read-back of its tokens): the token ids, positions
        and slots of every row, the emitting rows, the decode rows' slots and lengths (decode
        segments come first, one token each: they are rows 0..n-1) and each prefill chunk's
        slot, extent and causal mask."""
        device = self.model.embed.device
        decodes = 0
        for segment in segments:  # the scheduler puts every decode first
            if len(segment.tokens) != 1 or segment.start < len(segment.request.prompt):
                break
            decodes += 1
        meta: list[int] = [t for s in segments for t in s.tokens]
        for s in segments:
            meta.extend(range(s.start, s.start + len(s.tokens)))
        for s in segments:
            meta.extend([s.request.slot] * len(s.tokens))  # type: ignore[list-item]
        last, offset, chunks = [], 0, []
        for index, s in enumerate(segments):
            offset += len(s.tokens)
            if s.emits:
                last.append(offset - 1)
            if index >= decodes:
                assert s.request.slot is not None  # admitted requests hold a slot
                chunks.append((offset - len(s.tokens), offset, s.start + len(s.tokens),
                               s.request.slot, s.start))
        meta += last
        meta += [s.start + 1 for s in segments[:decodes]]
        host = torch.tensor(meta, dtype=torch.long, pin_memory=device.type == "cuda")
        flat = host.to(device, non_blocking=True)
        emitting = len(last)
        tokens, positions, slots, last_rows, lengths = flat.split(
            [count, count, count, emitting, decodes])
        plan: dict[str, Any] = {"tokens": tokens[None], "positions": positions,
                                "slots": slots, "last": last_rows if emitting else None,
                                "decode": None, "chunks": []}
        if decodes:
            longest = max(s.start + 1 for s in segments[:decodes])
            valid = torch.arange(longest, device=device)[None, :] < lengths[:, None]
            plan["decode"] = (decodes, slots[:decodes], longest, valid[:, None, None, :])
        for first, stop, end, slot, start in chunks:
            query_pos = torch.arange(start, end, device=device)[:, None]
            allowed = torch.arange(end, device=device)[None, :] <= query_pos
            if self.grouped_rows and self.heads != self.kv_heads:  # a copy per query head
                allowed = allowed.repeat(self.heads // self.kv_heads, 1)
            plan["chunks"].append((first, stop, end, slot, allowed))
        return plan

    def _attend(self, layer: int, plan: dict[str, Any], q: torch.Tensor, count: int
                ) -> torch.Tensor:
        """Attention output [1, count, heads * head_dim] of q [1, heads, count, head_dim]."""
        kv_heads, head_dim = self.kv_heads, self.head_dim
        group = self.heads // kv_heads if self.grouped_rows else 1
        gqa = self.heads != kv_heads and not self.grouped_rows
        width = self.heads * head_dim
        decoded = None
        if plan["decode"] is not None:  # one query per request: batch them against their slots
            rows, slots, longest, mask = plan["decode"]
            keys = self.keys[layer][slots, :, :longest]  # [n, kv_heads, longest, head_dim]
            values = self.values[layer][slots, :, :longest]
            queries = q[0, :, :rows].transpose(0, 1)  # [n, heads, head_dim]
            queries = (queries.reshape(rows, kv_heads, group, head_dim) if self.grouped_rows
                       else queries[:, :, None])
            decoded = F.scaled_dot_product_attention(queries, keys, values, attn_mask=mask,
                                                     enable_gqa=gqa)
            if not plan["chunks"]:  # a decode-only iteration: nothing to assemble
                return decoded.reshape(1, count, width)
        out = q.new_empty(count, self.heads, head_dim)
        if decoded is not None:
            out[:decoded.shape[0]] = decoded.reshape(-1, self.heads, head_dim)
        for first, stop, end, slot, allowed in plan["chunks"]:
            keys = self.keys[layer][slot:slot + 1, :, :end]
            values = self.values[layer][slot:slot + 1, :, :end]
            queries = q[:, :, first:stop]
            if self.grouped_rows:
                queries = queries.reshape(1, kv_heads, group * (stop - first), head_dim)
            attended = F.scaled_dot_product_attention(queries, keys, values, attn_mask=allowed,
                                                      enable_gqa=gqa)
            target = out[first:stop].view(stop - first, -1, group, head_dim)
            target.copy_(attended[0].unflatten(1, (group, stop - first)).permute(2, 0, 1, 3))
        return out.view(1, count, width)
