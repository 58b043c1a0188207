"""The local harness: runs the line's processes on one machine (Kafka broker, worker, simulator,
Prometheus) for the demo, the benchmark, the fault suite and the tests.

It is the only package that knows every deployable; nothing imports it except tests and its own
entry points (`python -m line_harness.<part>`).
"""
