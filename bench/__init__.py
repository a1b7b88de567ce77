"""Benchmarks for fanwatch (run as root; not part of the test suite)."""
