"""CI must run exactly the README's test command."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _commands(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip().startswith("python3 -m venv")]


def test_ci_runs_the_readme_test_command() -> None:
    readme = _commands((ROOT / "README.md").read_text())
    assert len(readme) == 2, readme
    ci = _commands((ROOT / ".ci" / "run").read_text())
    assert ci == [readme[1]]
    assert "pytest" in readme[1] and "aiperf-workbench" in readme[0]
