"""Triton kernel sources. Each module imports triton at its top: the launchers in
workloads.layers import them lazily, so the rest of the package imports where triton is absent
(CI, the app). Kernels live at module level so they can call each other (the interpreter
resolves callees through the module's globals)."""
