"""Benchmarks that ship with the package (`sleep-ray bench ...`): the system against its limits."""
