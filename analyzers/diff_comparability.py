"""Can two runs be compared like for like? The diff's first question, asked before any ratio.

Two kinds of evidence, after nsys-ai 0.3's diff (which scores comparability and refuses a
verdict below a threshold):

- Hard differences, from the run records: workload, preset, shape parameters (batch, lengths,
  model dimensions), dtype, step (decode / prefill) and device. Any one of them makes the pair
  "not comparable"; each is named. Layer sets and profilers may differ: that is what a diff
  is for.
- A score in [0, 1] for sides whose records cannot say what ran (artifacts, `analyze --save`
  sessions): the product of the kernel-launch ratio and the share of kernel names the two
  have in common (nsys-ai's ``c_workload * c_kernel_overlap``). Below ``MIN_SCORE`` the
  pair is not comparable enough to judge. Profiles of different scope (ncu's one decoder
  block against whole steps) score 0.

A user may force the comparison; the differences are still reported. Pure: dicts and
KernelTables in, a dataclass out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from profilers.parsers.schema import Col

MIN_SCORE = 0.5  # nsys-ai's MIN_COMPARABILITY_CONFIDENCE
MIN_NAMES_FOR_OVERLAP = 5  # fewer distinct kernel names: the overlap says little (nsys-ai: 5)
# Parameters that choose how a layer runs, not what the model or its inputs are.
RUN_OPTION_PARAMS = frozenset({"mode", "unmet_layers", "compile_mode", "compile_prefill_mode",
                               "fp8_scaling", "spec_k", "draft_layers", "kv_block",
                               "step_sleep_ms"})


@dataclass(frozen=True)
class Difference:
    what: str  # workload | preset | dtype | step | device | a shape parameter ("batch", ...)
    baseline: str
    candidate: str

    def text(self) -> str:
        return f"{self.what} {self.baseline} vs {self.candidate}"


@dataclass(frozen=True)
class Comparability:
    differences: tuple[Difference, ...] = ()  # hard: any one makes the pair not comparable
    score: float | None = None  # soft, for sides without a run spec; None when not scored
    reasons: tuple[str, ...] = ()  # why the score is what it is / what could not be checked
    same: tuple[str, ...] = ()  # what was checked and found equal
    allowed: tuple[str, ...] = ()  # differences a diff is for (layers, profiler)
    forced: bool = False  # compared anyway at the user's request

    @property
    def comparable(self) -> bool:
        return not self.differences and (self.score is None or self.score >= MIN_SCORE)

    def summary(self) -> str:
        """One line: "comparable (...)", "not comparable: workload moe vs dense; ..."."""
        if self.differences:
            head = "not comparable: " + "; ".join(d.text() for d in self.differences)
        elif self.score is not None and self.score < MIN_SCORE:
            head = (f"not comparable enough to judge: kernel score {self.score:.2f} < "
                    f"{MIN_SCORE:.2f} ({self.reasons[0] if self.reasons else 'no reason'})")
        elif self.score is not None:
            head = f"comparable by their kernels (score {self.score:.2f})"
        else:
            head = "comparable (" + ", ".join(self.same) + " equal)" if self.same else "comparable"
        if self.forced and not self.comparable:
            head += " — compared anyway (--force)"
        return head


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def has_spec(record: dict[str, Any]) -> bool:
    """True for a workbench run (its record says what ran); False for artifacts and
    `analyze --save` sessions."""
    return record.get("kind", "run") == "run" and bool(_dict(record.get("spec")).get("workload"))


def shape_of(record: dict[str, Any]) -> dict[str, Any]:
    """The model and input shape the run used: the child's resolved shape where it wrote one,
    else the spec's parameters without the run options."""
    resolved = _dict(_dict(record.get("details")).get("shape"))
    if resolved:
        return dict(resolved)
    params = _dict(_dict(record.get("spec")).get("params"))
    return {k: v for k, v in params.items() if k not in RUN_OPTION_PARAMS}


def _text(value: Any) -> str:
    return "n/a" if value is None or value == "" else str(value)


def _spec_differences(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[Difference], list[str]]:
    spec_a, spec_b = _dict(a.get("spec")), _dict(b.get("spec"))
    diffs: list[Difference] = []
    same: list[str] = []

    def check(what: str, va: Any, vb: Any) -> None:
        if va is None or vb is None or va == "" or vb == "":
            return
        if va != vb:
            diffs.append(Difference(what, _text(va), _text(vb)))
        else:
            same.append(what)

    check("workload", spec_a.get("workload"), spec_b.get("workload"))
    shape_a, shape_b = shape_of(a), shape_of(b)
    if spec_a.get("workload") == spec_b.get("workload"):
        check("preset", spec_a.get("preset"), spec_b.get("preset"))
        if spec_a.get("preset") == spec_b.get("preset"):
            # Same preset: a differing shape parameter is a user override (batch, lengths).
            keys = sorted((set(shape_a) | set(shape_b)) - {"dtype"})
            shape_diffs = [Difference(k, _text(shape_a.get(k)), _text(shape_b.get(k)))
                           for k in keys if shape_a.get(k) != shape_b.get(k)]
            diffs += shape_diffs
            if keys and not shape_diffs:
                same.append("shape")
    check("dtype", shape_a.get("dtype") or _dict(spec_a.get("params")).get("dtype"),
          shape_b.get("dtype") or _dict(spec_b.get("params")).get("dtype"))
    check("step", _dict(a.get("metrics")).get("step") or _dict(spec_a.get("params")).get("mode"),
          _dict(b.get("metrics")).get("step") or _dict(spec_b.get("params")).get("mode"))
    return diffs, same


def _device_differences(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[Difference], list[str]]:
    env_a, env_b = _dict(a.get("env")), _dict(b.get("env"))
    kind_a, kind_b = env_a.get("device_kind"), env_b.get("device_kind")
    if kind_a and kind_b and kind_a != kind_b:
        return [Difference("device", _text(kind_a), _text(kind_b))], []
    name_a, name_b = env_a.get("device_name"), env_b.get("device_name")
    if name_a and name_b:
        if name_a != name_b:
            return [Difference("device", str(name_a), str(name_b))], []
        return [], ["device"]
    return [], []


def _allowed(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    spec_a, spec_b = _dict(a.get("spec")), _dict(b.get("spec"))
    out = []
    la, lb = spec_a.get("layers"), spec_b.get("layers")
    if la and lb and la != lb:
        out.append(f"layers {','.join(la)} vs {','.join(lb)}")
    pa, pb = spec_a.get("profiler"), spec_b.get("profiler")
    if pa and pb and pa != pb:
        out.append(f"profiler {pa} vs {pb}")
    return out


def profile_scope(record: dict[str, Any]) -> str | None:
    """What part of the step the kernel artifact covers when it is not the whole step
    (ncu's default: one decoder block)."""
    scope = _dict(_dict(record.get("details")).get("profile_scope"))
    what = scope.get("what")
    return str(what) if what and scope.get("scope") != "step" else None


def kernel_score(kt_a: pd.DataFrame | None, kt_b: pd.DataFrame | None,
                 steps_a: float | None = None, steps_b: float | None = None
                 ) -> tuple[float | None, list[str]]:
    """nsys-ai's soft comparability of two kernel tables: launch-count ratio (per step when
    both step counts are known) times the overlap of their kernel names."""
    if kt_a is None or kt_b is None or not len(kt_a) or not len(kt_b):
        return None, ["no kernels on one side: nothing to score"]
    per_step = bool(steps_a and steps_b)
    na = len(kt_a) / (steps_a if per_step and steps_a else 1.0)
    nb = len(kt_b) / (steps_b if per_step and steps_b else 1.0)
    ratio = min(na, nb) / max(na, nb)
    reasons = []
    unit = " per step" if per_step else ""
    if ratio < MIN_SCORE:
        reasons.append(f"kernel launches{unit} differ: {na:,.0f} vs {nb:,.0f}")
    names_a = set(kt_a[Col.NAME].astype(str).unique())
    names_b = set(kt_b[Col.NAME].astype(str).unique())
    overlap = 1.0
    if len(names_a) > MIN_NAMES_FOR_OVERLAP and len(names_b) > MIN_NAMES_FOR_OVERLAP:
        shared = len(names_a & names_b)
        overlap = shared / min(len(names_a), len(names_b))
        if overlap < MIN_SCORE:
            reasons.append(f"{shared} kernel names in common ({len(names_a)} vs "
                           f"{len(names_b)} distinct)")
    return ratio * overlap, reasons


def assess(a: dict[str, Any], b: dict[str, Any], kt_a: pd.DataFrame | None = None,
           kt_b: pd.DataFrame | None = None, steps_a: float | None = None,
           steps_b: float | None = None, force: bool = False) -> Comparability:
    """Comparability of baseline ``a`` and candidate ``b`` (record dicts)."""
    diffs, same = _spec_differences(a, b) if has_spec(a) and has_spec(b) else ([], [])
    dev_diffs, dev_same = _device_differences(a, b)
    diffs += dev_diffs
    same += dev_same
    score: float | None = None
    reasons: list[str] = []
    if not (has_spec(a) and has_spec(b)):
        score, reasons = kernel_score(kt_a, kt_b, steps_a, steps_b)
        unknown = [side for side, rec in (("baseline", a), ("candidate", b)) if not has_spec(rec)]
        who = "either side" if len(unknown) == 2 else f"the {unknown[0]}"
        reasons.append(f"no run spec for {who} (an artifact or analysis session): workload and "
                       "shape cannot be checked, so the kernels are scored instead")
    scope_a, scope_b = profile_scope(a), profile_scope(b)
    if scope_a != scope_b and (kt_a is not None and kt_b is not None):
        score = 0.0
        reasons.insert(0, f"the kernel artifacts cover different parts of the step: "
                          f"{scope_a or 'whole steps'} vs {scope_b or 'whole steps'}")
    return Comparability(differences=tuple(diffs), score=score, reasons=tuple(reasons),
                         same=tuple(same), allowed=tuple(_allowed(a, b)), forced=force)
