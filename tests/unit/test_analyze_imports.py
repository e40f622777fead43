"""`analyze` of an nsys export leaves out the run machinery every parser build used to bring
(workbench.api.suite, imported for its help text), with the suite command's help unchanged."""

from __future__ import annotations

import subprocess
import sys

import workbench.api.suite as suite_api
from tests.unit.test_parsers_nsys import make_db
from workbench.cli.cmd_suite import _suite_doc


def test_analyze_of_an_nsys_file_leaves_the_run_machinery_unimported(tmp_path):
    db = make_db(tmp_path / "r.sqlite")
    code = ("import sys; from workbench.cli import main; "
            f"rc = main(['--home', {str(tmp_path / 'home')!r}, 'analyze', {str(db)!r}]); "
            "bad = [m for m in ('workbench.api.suite', 'workbench.api.runs') "
            "if m in sys.modules]; print('IMPORTED', bad, rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "IMPORTED [] 0" in out.stdout


def test_suite_help_text_is_the_module_docstring():
    assert _suite_doc() == suite_api.__doc__


def test_a_kineto_parse_starts_before_pandas_is_imported(tmp_path, h100_fixtures, monkeypatch):
    """The split parse imports pandas in this process while its forked worker parses
    (``_trace_split.parse_in_pieces(meanwhile=import_pandas)``): nothing on the way from the
    CLI to the parse may import pandas first (the front-door API did, at import)."""
    trace = h100_fixtures / "torch_trace.json"
    code = ("import sys\n"
            "import profilers.parsers._kineto_columns as columns\n"
            "real = columns.can_split\n"
            "def probe(path, size):\n"
            "    print('PANDAS AT PARSE', 'pandas' in sys.modules)\n"
            "    return real(path, size)\n"
            "columns.can_split = probe\n"
            "from workbench.cli import main\n"
            f"rc = main(['--home', {str(tmp_path / 'home')!r}, 'analyze', {str(trace)!r}])\n"
            "print('RC', rc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "PANDAS AT PARSE False" in out.stdout and "RC 0" in out.stdout, out.stdout[-2000:]
