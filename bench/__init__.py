"""Benchmarks: ``make bench`` (``python -m bench``) runs each and writes its figures to bench/results/."""
