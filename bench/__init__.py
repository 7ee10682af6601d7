"""notifier's benchmarks (issue #7): throughput, latency and memory against same-run baselines.

Every figure is printed next to a baseline measured in the same run on the
same machine and sink, because on a shared two-core box absolute numbers
drift with whatever else is running; ratios drift much less. See
``bench/README.md`` for what each benchmark measures and why.
"""
