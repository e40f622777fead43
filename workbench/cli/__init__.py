"""The command-line face: argument parsing and printing over ``workbench.api``.

``main(argv)`` runs one command and returns its exit code; ``entry`` is the console script.
"""

from workbench.cli.main import STOP, entry, main

# ``entry`` too: a console script installed before the CLI became a package imports it here.
__all__ = ["STOP", "entry", "main"]
