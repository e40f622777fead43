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
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from workloads.dense import apply_rope


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
    def _project_qkv(self, attn: Any, x: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q_dim, kv_dim = self.heads * self.head_dim, self.kv_heads * self.head_dim
        fused = getattr(attn, "qkv_proj", None)
        if fused is not None:  # the dense L2 layer fuses q/k/v into one projection
            return fused(x).split([q_dim, kv_dim, kv_dim], dim=-1)
        return attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)

    @torch.inference_mode()
    def _forward(self, segments: list[Segment]) -> torch.Tensor:
        """Logits [segments that emit, vocab] of each emitting segment's last token."""
        model, device = self.model, self.model.embed.device
        flat = [t for s in segments for t in s.tokens]
        positions_list = [s.start + i for s in segments for i in range(len(s.tokens))]
        slots_list = [s.request.slot for s in segments for _ in s.tokens]
        count = len(flat)
        tokens = torch.tensor([flat], device=device)
        positions = torch.tensor(positions_list, device=device)
        slots = torch.tensor(slots_list, device=device)
        cos, sin = model.rope_cos[positions], model.rope_sin[positions]
        bounds, offset = [], 0
        for s in segments:
            bounds.append((offset, offset + len(s.tokens)))
            offset += len(s.tokens)
        decode_rows = [i for i, s in enumerate(segments) if len(s.tokens) == 1 and s.start
                       >= len(s.request.prompt)]
        plan = self._attention_plan(segments, bounds, decode_rows, device)
        x = F.embedding(tokens, model.embed)
        for layer, block in enumerate(model.blocks):
            attn = block.attn
            q, k, v = self._project_qkv(attn, block.attn_norm(x))
            q = q.view(1, count, self.heads, self.head_dim).transpose(1, 2)
            k = k.view(1, count, self.kv_heads, self.head_dim).transpose(1, 2)
            v = v.view(1, count, self.kv_heads, self.head_dim).transpose(1, 2)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            self.keys[layer][slots, :, positions] = k[0].transpose(0, 1)
            self.values[layer][slots, :, positions] = v[0].transpose(0, 1)
            out = torch.empty_like(q)
            self._attend(layer, plan, q, out)
            attended = out.transpose(1, 2).reshape(1, count, self.heads * self.head_dim)
            x = x + attn.o_proj(attended)
            x = x + block.mlp(block.mlp_norm(x))
        last = torch.tensor([bounds[i][1] - 1 for i, s in enumerate(segments) if s.emits],
                            device=device, dtype=torch.long)
        return model.lm_head(model.norm(x[:, last]))[0]

    def _attention_plan(self, segments: list[Segment], bounds: list[tuple[int, int]],
                        decode_rows: list[int], device: torch.device) -> dict[str, Any]:
        """What attention needs per iteration, built once and shared by every layer: the
        decode rows' indices, slots and length mask, and each prefill chunk's slot, extent and
        causal mask (building these per layer cost 3 host-to-device copies and a few kernels
        per layer and chunk in an engine that is bound by host work)."""
        plan: dict[str, Any] = {"decode": None, "chunks": []}
        if decode_rows:
            longest = int(max(segments[i].start + 1 for i in decode_rows))
            meta = torch.tensor([[bounds[i][0], segments[i].start + 1,
                                  segments[i].request.slot] for i in decode_rows],
                                device=device)  # one copy: rows, lengths, slots
            rows, lengths, slots = meta[:, 0], meta[:, 1], meta[:, 2]
            valid = torch.arange(longest, device=device)[None, :] < lengths[:, None]
            plan["decode"] = (rows, slots, longest, valid[:, None, None, :])
        decode_set = set(decode_rows)
        for index, segment in enumerate(segments):
            if index in decode_set:
                continue
            first, stop = bounds[index]
            end = segment.start + (stop - first)
            slot = segment.request.slot
            assert slot is not None  # admitted requests hold a slot
            query_pos = torch.arange(segment.start, end, device=device)[:, None]
            allowed = torch.arange(end, device=device)[None, :] <= query_pos
            plan["chunks"].append((first, stop, end, slot, allowed))
        return plan

    def _attend(self, layer: int, plan: dict[str, Any], q: torch.Tensor,
                out: torch.Tensor) -> None:
        gqa = self.heads != self.kv_heads
        if plan["decode"] is not None:  # one query per request: batch them against their slots
            rows, slots, longest, mask = plan["decode"]
            keys = self.keys[layer][slots, :, :longest]
            values = self.values[layer][slots, :, :longest]
            queries = q[0][:, rows].transpose(0, 1)[:, :, None]  # [n, heads, 1, head_dim]
            result = F.scaled_dot_product_attention(queries, keys, values, attn_mask=mask,
                                                    enable_gqa=gqa)
            out[0][:, rows] = result[:, :, 0].transpose(0, 1)
        for first, stop, end, slot, allowed in plan["chunks"]:
            keys = self.keys[layer][slot:slot + 1, :, :end]
            values = self.values[layer][slot:slot + 1, :, :end]
            out[:, :, first:stop] = F.scaled_dot_product_attention(
                q[:, :, first:stop], keys, values, attn_mask=allowed, enable_gqa=gqa)
