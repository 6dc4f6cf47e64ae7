"""Benchmarks of the orchestration engine (run ``python bench/run.py``; see README.md)."""
