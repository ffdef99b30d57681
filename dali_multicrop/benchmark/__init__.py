"""Benchmark harness: the same crop recipe through several backends, measured side by side."""

from .harness import BACKENDS, BenchConfig, BackendResult, run_benchmark

__all__ = ["BACKENDS", "BenchConfig", "BackendResult", "run_benchmark"]
