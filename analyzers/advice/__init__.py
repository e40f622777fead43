"""Advice: evidence-grounded rules over a run's analysis (pure, offline), and an optional,
opt-in LLM client (``analyzers.advice.llm``, imported only when asked for)."""

from analyzers.advice.engine import RULES, advise, rule_ids, run_rules
from analyzers.advice.facts import Facts, build_facts
from analyzers.advice.findings import Evidence, Finding

__all__ = ["RULES", "Evidence", "Facts", "Finding", "advise", "build_facts", "rule_ids", "run_rules"]
