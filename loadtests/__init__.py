"""Benchmarks of the Amaro Than platform; run ``python -m loadtests --help``."""
