"""Benchmarks: each script measures and writes its figures down (docs/benchmarks.md).
Run them from the repository root as modules, ``python -m bench.NAME``."""
