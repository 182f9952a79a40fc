"""Tests of the benchmark's own parts: `python -m pytest bench/tests`."""
