"""Speculative decoding micro-workload: a draft proposes k tokens, the target verifies them in
one forward pass, and the output equals greedy decoding of the target exactly.

Target: ``workloads.dense.DenseDecoder`` (random weights from the seed, batch 1). Draft: a
truncated-layer copy of the target — its first ``draft_layers`` blocks with the target's
embedding, final norm and LM head (shared tensors, not copies) — so the two agree often but not
always and the acceptance rate is a real measurement, not 0 or 1.

Greedy verification: the target's argmax at each drafted position is compared with the draft
token; the longest agreeing prefix is accepted and the target's own token at the first
disagreement (or after all k) is emitted too. Caches roll back by position: entries past the
accepted prefix are simply overwritten by the next round.

Variants: ``greedy`` (baseline: target alone, one token per forward) and ``speculative``
(draft length ``k``). ``prepare`` also sweeps ``k_sweep`` (e.g. "1,2,4,8") and reports, per k,
the acceptance rate, tokens per target forward, the time against greedy (speedup) and whether
the tokens matched greedy exactly (``extra.k_sweep``).
"""

from __future__ import annotations

import statistics
from typing import Any

import torch
from torch import nn

from workloads import measure
from workloads.dense import DenseDecoder, resolve_shape
from workloads.errors import WorkbenchError
from workloads.interface import ParityOutputs
from workloads.micro_base import MicroWorkload, check_params, dtype_of, int_list, positive_int

SHAPE_KEYS = ("hidden", "layers", "heads", "kv_heads", "mlp", "vocab", "prompt_len",
              "new_tokens", "max_seq", "dtype", "rope_theta", "norm_eps")
KNOWN = (*SHAPE_KEYS, "draft_layers", "k", "k_sweep", "sweep_repeats", "variant")
PRECISION_OF_DTYPE = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def truncated_draft(target: DenseDecoder, shape: dict[str, Any], draft_layers: int,
                    device: torch.device, dtype: torch.dtype) -> DenseDecoder:
    """A draft that shares the target's first ``draft_layers`` blocks, embedding, norm and
    head; it has its own KV cache."""
    draft = DenseDecoder({**shape, "layers": draft_layers}, device, dtype, seed=0)
    draft.blocks = nn.ModuleList(list(target.blocks)[:draft_layers])
    draft.embed, draft.norm, draft.lm_head = target.embed, target.norm, target.lm_head
    return draft.eval()


def greedy_generate(target: DenseDecoder, prompt: torch.Tensor, new_tokens: int
                    ) -> tuple[list[int], torch.Tensor]:
    """Target alone: (tokens, logits [new_tokens, vocab])."""
    logits = target(prompt, 0)
    rows, tokens = [], []
    position = prompt.shape[1]
    for index in range(new_tokens):
        rows.append(logits[0].float())
        token = logits.argmax(-1)
        tokens.append(int(token))
        if index + 1 < new_tokens:
            logits = target(token[:, None], position)
            position += 1
    return tokens, torch.stack(rows)


def speculative_generate(target: DenseDecoder, draft: DenseDecoder, prompt: torch.Tensor,
                         new_tokens: int, k: int) -> tuple[list[int], torch.Tensor, dict]:
    """(tokens, target logits per emitted token [new_tokens, vocab], stats)."""
    device = prompt.device
    seq = prompt[0].tolist()
    logits = target(prompt, 0)
    draft(prompt, 0)
    out_tokens, out_rows = [int(logits.argmax(-1))], [logits[0].float()]
    seq.append(out_tokens[0])
    target_valid = draft_valid = prompt.shape[1]  # cache positions holding correct K/V
    proposed = accepted = rounds = 0
    while len(out_tokens) < new_tokens:
        feed, position, drafts = seq[draft_valid:], draft_valid, []
        for _ in range(k):
            draft_logits = draft(torch.tensor([feed], device=device), position)
            position += len(feed)
            feed = [int(draft_logits.argmax(-1))]
            drafts.append(feed[0])
        before = len(seq)
        verify = seq[target_valid:] + drafts
        verify_logits = target(torch.tensor([verify], device=device), target_valid,
                               all_logits=True)[0]
        first = before - target_valid - 1  # row predicting the token after seq[-1]
        predictions = verify_logits[first:].argmax(-1).tolist()
        agreed = 0
        while agreed < k and drafts[agreed] == predictions[agreed]:
            agreed += 1
        emitted = drafts[:agreed] + [predictions[agreed]]
        out_tokens += emitted
        out_rows += list(verify_logits[first:first + agreed + 1].float())
        seq += emitted
        target_valid = len(seq) - 1
        draft_valid = min(position, before + agreed)
        proposed, accepted, rounds = proposed + k, accepted + agreed, rounds + 1
    stats = {"k": k, "proposed": proposed, "accepted": accepted, "target_forwards": rounds + 1,
             "acceptance_rate": accepted / proposed if proposed else None}
    return out_tokens[:new_tokens], torch.stack(out_rows[:new_tokens]), stats


class SpecDecodeWorkload(MicroWorkload):
    name = "specdec"
    baseline = "greedy"
    default_variant = "speculative"
    variants = {"greedy": (), "speculative": ()}
    model: DenseDecoder | None

    def setup(self, params: dict[str, Any], seed: int) -> None:
        check_params(self.name, params, KNOWN)
        shape = resolve_shape({**{k: params[k] for k in SHAPE_KEYS if k in params},
                               "batch": 1})
        self.draft_layers = positive_int(self.name, params, "draft_layers")
        self.k = positive_int(self.name, params, "k")
        self.k_sweep = int_list(self.name, params.get("k_sweep", str(self.k)), "k_sweep")
        self.sweep_repeats = int(params.get("sweep_repeats", 3))
        if self.draft_layers >= shape["layers"]:
            raise WorkbenchError(f"draft_layers ({self.draft_layers}) must be fewer than the "
                                 f"target's layers ({shape['layers']})")
        needed = shape["prompt_len"] + shape["new_tokens"] + max(self.k, *self.k_sweep)
        if needed > shape["max_seq"]:
            raise WorkbenchError(f"prompt_len + new_tokens + k ({needed}) exceeds max_seq "
                                 f"({shape['max_seq']})", "raise max_seq")
        self.shape = shape
        self.dtype = dtype_of(self.name, shape["dtype"])
        self.compute_precision = PRECISION_OF_DTYPE[self.dtype]
        self.model = DenseDecoder(shape, self.device, self.dtype, seed).eval()
        self.draft = truncated_draft(self.model, shape, self.draft_layers, self.device,
                                     self.dtype)
        self.facts.update(shape=dict(shape), draft_layers=self.draft_layers, k=self.k)

    def make_inputs(self, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        prompt = torch.randint(0, self.shape["vocab"], (1, self.shape["prompt_len"]),
                               generator=generator)
        return prompt.to(self.device)

    def generate(self, variant: str, prompt: torch.Tensor, k: int | None = None
                 ) -> tuple[list[int], torch.Tensor, dict[str, Any]]:
        assert self.model is not None
        if variant == "greedy":
            tokens, rows = greedy_generate(self.model, prompt, self.shape["new_tokens"])
            return tokens, rows, {}
        return speculative_generate(self.model, self.draft, prompt, self.shape["new_tokens"],
                                    k or self.k)

    def run_variant(self, variant: str, inputs: Any) -> torch.Tensor:
        return self.generate(variant, inputs)[1]

    def parity_outputs(self, inputs: Any, forced_tokens: torch.Tensor | None = None
                       ) -> ParityOutputs:
        variant = self.baseline if forced_tokens is None else self.variant
        tokens, rows, stats = self.generate(variant, inputs)
        if forced_tokens is None:
            self._greedy_tokens = tokens
        else:
            self.facts["tokens_equal_greedy"] = tokens == self._greedy_tokens
            self.facts.update({k: v for k, v in stats.items() if k != "k"})
        return ParityOutputs(rows[:, None, :], torch.tensor(tokens)[:, None])

    def prepare(self, inputs: Any) -> None:
        super().prepare(inputs)
        timer = measure.StepTimer(self.device)

        def median_ms(variant: str, k: int | None = None) -> tuple[float, list[int], dict]:
            results: list[Any] = []
            times = [timer.time_ms(lambda: results.append(self.generate(variant, inputs, k)))
                     for _ in range(self.sweep_repeats + 1)][1:]  # first one is a warm-up
            return statistics.median(times), results[-1][0], results[-1][2]

        greedy_ms, greedy_tokens, _ = median_ms("greedy")
        sweep = []
        for k in self.k_sweep:
            spec_ms, tokens, stats = median_ms("speculative", k)
            sweep.append({**stats, "ms": spec_ms, "speedup_vs_greedy": greedy_ms / spec_ms,
                          "tokens_equal_greedy": tokens == greedy_tokens})
        self.facts["greedy_ms"] = greedy_ms
        self.facts["k_sweep"] = sweep

    def tokens_per_step(self) -> int:
        return self.shape["new_tokens"]


def create_workload() -> SpecDecodeWorkload:
    return SpecDecodeWorkload()
