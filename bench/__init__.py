"""Benchmarks: `make bench` runs every bench/*.py whose name does not start with "_"."""
