"""Workloads and optimization layers.

Importing this package (and ``workloads.catalog``, ``workloads.spec``) never imports torch:
the TUI process lists workloads and layers from here. Model code lives in modules that import
torch and only run in the child process started by profilers/ (``python -m workloads.run``).
"""
