"""``python -m workbench.cli``: the same as the ``aiperf-workbench`` command."""

from workbench.cli.main import entry

entry()
