"""Throughput and memory benchmarks of the worker against the Listrak simulator and sink.

Not tests: nothing here asserts on wall time. `python -m bench --help` says how to run it.
"""
