"""Benchmarks (run as modules, e.g. python -m benchmarks.optimizer_bench)."""
