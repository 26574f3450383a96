"""Benchmarks: each with its own README section and recorded results (see bench/README.md)."""
