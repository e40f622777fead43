"""What a rule says when it fires: the finding, the measurements behind it, what to do about it,
what that should buy, and how sure we are. Plain dataclasses (JSON-able via ``to_dict``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

CONFIDENCES = ("high", "medium", "low")
_CONFIDENCE_WEIGHT = {"high": 1.0, "medium": 0.6, "low": 0.3}


@dataclass(frozen=True)
class Evidence:
    """One measurement a finding rests on. ``value`` and ``threshold`` are in ``unit``
    (``share`` = a fraction of 1); ``source`` names the session and artifact it came from."""

    metric: str
    value: float | int | str | None
    threshold: float | int | str | None
    source: str
    unit: str = ""
    comparison: str = ">="  # how value relates to threshold when the rule fires

    def text(self) -> str:
        bound = (f"{self.comparison} {_fmt(self.threshold, self.unit)}; "
                 if self.threshold is not None else "")
        return f"{self.metric} = {_fmt(self.value, self.unit)} ({bound}{self.source})"


@dataclass(frozen=True)
class Finding:
    rule: str  # rule id, e.g. "moe_dispatch"
    finding: str  # one sentence: what the measurements show
    evidence: tuple[Evidence, ...]
    action: str  # what to change
    expected_effect: str
    confidence: str  # high | medium | low
    impact: float  # rough share of the step the fix addresses (0..1), for ranking
    layer: str | None = None  # the workbench layer that applies the fix, when one does
    kernels: tuple[str, ...] = field(default_factory=tuple)  # the kernels the finding names
    # What the fix can recover, in microseconds per step (None: not a time finding, or the
    # step is unknown); ``recoverable`` says it with the measurement it rests on.
    recoverable_us: float | None = None
    recoverable: str = ""

    @property
    def score(self) -> float:
        return self.impact * _CONFIDENCE_WEIGHT.get(self.confidence, 0.3)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["evidence"] = [asdict(e) for e in self.evidence]
        data["kernels"] = list(self.kernels)
        return data


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if unit == "share":
        return f"{float(value) * 100:.1f}%"
    if isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = f"{value:,}"
    return f"{text} {unit}".strip()
