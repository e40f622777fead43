"""A complete bring-your-own-model target: a tiny causal language model.

Run it (CPU is fine):

    aiperf-workbench run --target examples/my_target.py:build --layers L0,L1 --device cpu

``build(params)`` returns a ``Workload``; the workbench then builds it, records the L0
reference decode, applies the layers, checks parity, times ``step`` and stores the session.
``params`` are the run's ``--param KEY=VALUE`` values (and --batch/--dtype/...).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from workloads.interface import ParityOutputs, Workload


class TinyCausalLM(nn.Module):
    def __init__(self, vocab: int, hidden: int, layers: int, heads: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        block = nn.TransformerEncoderLayer(hidden, heads, 4 * hidden, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.head = nn.Linear(hidden, vocab, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, T] -> logits of the last position [B, vocab]."""
        mask = nn.Transformer.generate_square_subsequent_mask(tokens.shape[1],
                                                              device=tokens.device)
        hidden = self.blocks(self.embed(tokens), mask=mask, is_causal=True)
        return self.head(hidden[:, -1])


class MyWorkload(Workload):
    name = "my_target"
    step_name = "prefill"

    def __init__(self, params: dict[str, Any]) -> None:
        self.vocab = int(params.get("vocab", 256))
        self.batch = int(params.get("batch", 2))
        self.prompt_len = int(params.get("prompt_len", 16))
        self.new_tokens = int(params.get("new_tokens", 4))

    def build(self, device: torch.device, dtype: torch.dtype, params: dict[str, Any],
              seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.device = device
        self.model = TinyCausalLM(self.vocab, hidden=64, layers=2, heads=4)
        self.model = self.model.to(device=device, dtype=dtype).eval()

    def make_inputs(self, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)  # CPU: same prompt on every device
        prompt = torch.randint(0, self.vocab, (self.batch, self.prompt_len), generator=generator)
        return prompt.to(self.device)

    def parity_outputs(self, inputs: torch.Tensor, forced_tokens: torch.Tensor | None = None
                       ) -> ParityOutputs:
        tokens, all_logits, chosen = inputs, [], []
        for index in range(self.new_tokens):
            logits = self.model(tokens).float()
            token = logits.argmax(-1) if forced_tokens is None else forced_tokens[index]
            all_logits.append(logits)
            chosen.append(token)
            tokens = torch.cat([tokens, token[:, None]], dim=1)
        return ParityOutputs(torch.stack(all_logits), torch.stack(chosen))

    def step(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs)  # one prefill of the prompt; no synchronize here

    def tokens_per_step(self) -> int:
        return self.batch * self.prompt_len

    def extra(self) -> dict[str, Any]:
        return {"params": sum(p.numel() for p in self.model.parameters())}


def build(params: dict[str, Any]) -> Workload:
    return MyWorkload(params)
