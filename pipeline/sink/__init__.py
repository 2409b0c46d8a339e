"""Scheduling and policy of the sink process: board, retry, attempts, workers, pool, process. No reactivex."""
