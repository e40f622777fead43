"""The stored form of a step's operation inventory (torch-free: the child writes it, the
analysis reads it).

result.json ``details.inventory``::

    {"version": 1,
     "columns": {"op": [...], "kind": [...], "m": [...], ...},   # each distinct op row once
     "sequence": "0 1 2 1 3 ...",    # launch order, as indices into the rows
     "ops": 1234, "truncated": false, "notes": [...]}
  or {"version": 1, "error": "why it could not be recorded"}

A decoder's layers repeat, so a few dozen distinct rows describe thousands of launches; the
order as one string keeps result.json small (its writer indents every list item).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workloads.op_cost import OpCost

INVENTORY_VERSION = 1
COLUMNS = ("op", "kind", "dtype", "weight_dtype", "m", "n", "k", "batch", "heads", "kv_heads",
           "q_len", "kv_len", "head_dim", "causal", "flops", "bytes", "weight_bytes",
           "kv_bytes")


@dataclass
class Inventory:
    """Decoded: ``rows`` (one dict per distinct op row), ``order`` (row index per launch)."""

    rows: list[dict[str, Any]]
    order: list[int]
    truncated: bool = False
    notes: list[str] = field(default_factory=list)

    def op(self, position: int) -> dict[str, Any]:
        return self.rows[self.order[position]]

    def __len__(self) -> int:
        return len(self.order)


def _row(name: str, cost: OpCost) -> tuple[Any, ...]:
    values = {"op": name, **{c: getattr(cost, c) for c in COLUMNS if c != "op"}}
    return tuple(values[c] for c in COLUMNS)


def encode(calls: list[tuple[str, OpCost]], notes: list[str] | None = None,
           truncated: bool = False) -> dict[str, Any]:
    index: dict[tuple[Any, ...], int] = {}
    order: list[int] = []
    for name, cost in calls:
        order.append(index.setdefault(_row(name, cost), len(index)))
    rows = list(index)
    return {
        "version": INVENTORY_VERSION,
        "columns": {c: [row[i] for row in rows] for i, c in enumerate(COLUMNS)},
        "sequence": " ".join(map(str, order)),
        "ops": len(order),
        "truncated": truncated,
        "notes": list(notes or []),
    }


def decode(payload: Any) -> tuple[Inventory | None, str | None]:
    """(inventory, None), or (None, why not) for a missing, failed or malformed payload."""
    if not isinstance(payload, dict):
        return None, "the run has no operation inventory (recorded by runs since inventory v1)"
    if payload.get("error"):
        return None, f"the run's inventory could not be recorded: {payload['error']}"
    if payload.get("version") != INVENTORY_VERSION:
        return None, f"unknown inventory version {payload.get('version')!r}"
    columns = payload.get("columns")
    sequence = payload.get("sequence")
    if not isinstance(columns, dict) or not isinstance(sequence, str):
        return None, "malformed inventory (no columns or sequence)"
    lengths = {len(v) for v in columns.values() if isinstance(v, list)}
    if len(lengths) != 1 or len(columns) != sum(isinstance(v, list) for v in columns.values()):
        return None, "malformed inventory (columns of different lengths)"
    n_rows = lengths.pop()
    rows = [{c: columns[c][i] for c in columns} for i in range(n_rows)]
    try:
        order = [int(x) for x in sequence.split()]
    except ValueError:
        return None, "malformed inventory (sequence is not row indices)"
    if any(i < 0 or i >= n_rows for i in order):
        return None, "malformed inventory (sequence points outside the rows)"
    notes = [str(n) for n in payload.get("notes") or []]
    return Inventory(rows, order, bool(payload.get("truncated")), notes), None
