"""Benchmark scripts: speed, latency, load and the embedded model, each run with python -m."""
