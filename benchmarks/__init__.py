"""Benchmarks for the broker: each figure printed beside a baseline measured in the same run.

``make bench`` (``python -m benchmarks``) starts its own PostgreSQL cluster and
the real broker process, then measures the broker's overhead over the same SQL
issued directly, provisioning latency as instances pile up, and throughput with
concurrent clients. Ratios, not absolute times, are what to compare between
machines. Speed is judged here, never by timed tests.
"""
