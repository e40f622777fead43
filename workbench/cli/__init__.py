"""The command-line face: argument parsing and printing over ``workbench.api``.

``main(argv)`` runs one command and returns its exit code; ``entry`` is the console script.
"""

from workbench.cli.main import STOP, main

__all__ = ["STOP", "main"]
