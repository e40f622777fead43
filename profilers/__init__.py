"""Profiler wrappers (timer, torch, ncu, nsys), NVML telemetry, the process supervisor, and the
front door ``profilers.runner.run(spec, store, ...)``. parsers/ turns artifacts into the
KernelTable."""
