"""Benchmarks. `make bench` runs `python -m bench`, which runs every module listed in `bench.__main__`."""
