"""Benchmarks: print figures side by side, save them as JSON; never assert timings."""
