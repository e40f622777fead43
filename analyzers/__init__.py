"""Pure analyses over the KernelTable, frames and run records.

One analysis per module (breakdown, summary, temporal, ceilings, roofline, kernel_costs, diff);
each returns dataclasses or DataFrames and never prints, plots or touches files. Missing
values are None ("n/a" in front ends), never 0.
"""
