"""The benchmark suite (`make bench`): the real uploader against baselines, on loopback pyftpdlib servers.

Not collected by pytest (no `test_*` modules here; `tests/test_bench_smoke.py` runs the same
workloads at tiny sizes for correctness only). Run it with `python -m tests.benchmarks`.
"""
