"""The rule engine: run every rule over the facts of one run, rank what fires.

Ranking is by ``impact`` (the share of the measured step a fix can recover, from its
microseconds where known, else a rough share) weighted by confidence;
a parity failure always comes first (a run that broke parity has no speedup to improve), and a
fix that another one needs goes before it (syncs before CUDA graphs). A rule
that raises on odd data is skipped with a note, never fatal."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from analyzers.advice.facts import Facts, build_facts
from analyzers.advice.findings import Finding
from analyzers.advice.rules_kernels import KERNEL_RULES
from analyzers.advice.rules_record import RECORD_RULES
from analyzers.advice.rules_roof import ROOF_RULES
from analyzers.advice.rules_run import RUN_RULES
from analyzers.advice.rules_utilization import UTILIZATION_RULES

Rule = Callable[[Facts], "Finding | None"]
RULES: tuple[Rule, ...] = (*RECORD_RULES, *RUN_RULES, *KERNEL_RULES, *ROOF_RULES,
                           *UTILIZATION_RULES)


def rule_ids() -> list[str]:
    return [r.__name__ for r in RULES]


def run_rules(facts: Facts, rules: tuple[Rule, ...] = RULES,
              notes: list[str] | None = None) -> list[Finding]:
    findings: list[Finding] = []
    for rule in rules:
        try:
            found = rule(facts)
        except Exception as exc:  # odd data must not cost the other rules
            if notes is not None:
                notes.append(f"advice rule {rule.__name__} skipped: {type(exc).__name__}: {exc}")
            continue
        if found is not None:
            findings.append(found)
    findings.sort(key=lambda x: (x.rule != "parity_failure", -x.score, x.rule))
    return _prerequisites_first(findings)


# A CUDA graph (the launch-bound fix) cannot capture a step that synchronizes with the host, so
# while the step syncs, the fixes that remove the syncs come first: the MoE per-expert dispatch
# loop (nonzero / where per expert, each a sync) and the syncs themselves.
_UNBLOCKS_GRAPHS = ("moe_dispatch", "syncs_in_step")


def _prerequisites_first(findings: list[Finding]) -> list[Finding]:
    rules = [f.rule for f in findings]
    if "launch_bound" not in rules or "syncs_in_step" not in rules:
        return findings
    first = [f for f in findings if f.rule in _UNBLOCKS_GRAPHS]
    first.sort(key=lambda f: _UNBLOCKS_GRAPHS.index(f.rule))
    rest = [f for f in findings if f.rule not in _UNBLOCKS_GRAPHS]
    at = next(i for i, f in enumerate(rest) if f.rule == "launch_bound")
    launch = rest[at]
    syncs = next(f for f in first if f.rule == "syncs_in_step")
    rest[at] = replace(launch, action=f"First remove the host synchronizations "
                       f"({syncs.evidence[0].value} in the step, see above): a CUDA graph cannot "
                       "capture a step that syncs. Then: " + launch.action)
    return rest[:at] + first + rest[at:]


def advise(analysis: Any, record: Any = None, source: str | None = None,
           notes: list[str] | None = None) -> list[Finding]:
    """Ranked findings for one analyzed run (``analysis`` a RunAnalysis or None; ``record`` a
    RunRecord or its dict, optional)."""
    return run_rules(build_facts(analysis, record, source), notes=notes)
