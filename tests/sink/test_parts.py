"""The sink's small parts: backoff, the token bucket, the session pool, deletion rules, params, errors."""

from __future__ import annotations

import ftplib
import pickle
import socket
import ssl
import threading

import pytest

from pipeline.ftp.errors import (
    ConnectionLost,
    PermanentFailure,
    SessionFailure,
    TooManyConnections,
    TransientFailure,
    classify,
)
from pipeline.ftp.params import FtpParams, UploadPolicy
from pipeline.outbox.deletion import file_version, remove_local_file
from pipeline.sink.pool import SessionPool
from pipeline.sink.retry import Backoff, full_jitter
from pipeline.transport.bandwidth import TokenBucket
from tests.helpers import Clock

# --- backoff


def test_full_jitter_stays_under_the_exponential_cap():
    assert [full_jitter(n, 0.5, 3.0, rand=lambda: 1.0) for n in range(6)] == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0]
    assert full_jitter(3, 0.5, 3.0, rand=lambda: 0.25) == 0.5
    assert full_jitter(10_000, 0.5, 3.0, rand=lambda: 1.0) == 3.0
    assert all(0 <= full_jitter(4, 1, 10) <= 8 for _ in range(100))


def test_backoff_counts_failures_and_resets():
    backoff = Backoff(1.0, 4.0, rand=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(4)] == [1.0, 2.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0


# --- token bucket


def test_token_bucket_allows_a_burst_then_charges_the_rate():
    clock = Clock()
    bucket = TokenBucket(1000, capacity=500, clock=clock)
    assert bucket.chunk_size == 500
    assert bucket.reserve(500) == 0.0
    assert bucket.reserve(500) == pytest.approx(0.5)  # in debt: wait it off
    assert bucket.reserve(1000) == pytest.approx(1.5)  # senders queue behind each other
    clock.now += 1.5
    assert bucket.reserve(0) == 0.0  # the debt is paid off: the bucket is empty, not in debt
    clock.now += 100
    assert bucket.reserve(600) == pytest.approx(0.1)  # never more than one burst saved up


def test_token_bucket_default_burst_is_a_quarter_second():
    assert TokenBucket(100_000).chunk_size == 25_000
    with pytest.raises(ValueError):
        TokenBucket(0)


# --- session pool


def test_pool_shrinks_on_421_and_grows_back_one_at_a_time():
    clock = Clock()
    pool = SessionPool(3, regrow_seconds=10, clock=clock)
    assert pool.admit() and pool.admit() and pool.admit()
    assert pool.too_many() == 2  # the third got 421: the other two stay
    pool.release()
    blocked = threading.Thread(target=pool.admit, daemon=True)
    blocked.start()
    blocked.join(0.05)
    assert blocked.is_alive()
    clock.now += 10
    with pool._cond:
        pool._cond.notify_all()
    blocked.join(2)
    assert not blocked.is_alive()
    assert (pool.limit, pool.active) == (3, 3)


def test_pool_never_shrinks_below_one_and_close_releases_waiters():
    pool = SessionPool(2, regrow_seconds=100)
    assert pool.admit()
    assert pool.too_many() == 1
    assert pool.too_many() == 1
    results = []
    waiter = threading.Thread(target=lambda: results.append(pool.admit()))
    waiter.start()
    pool.close()
    waiter.join(2)
    assert results == [False]


# --- deletion rules


def test_remove_local_file_keeps_bare_csv_and_takes_the_csv_with_its_final(tmp_path):
    bare = tmp_path / "st@2024-05-01.csv"
    final = tmp_path / "st@2024-05-01.csv.final"
    wav = tmp_path / "a.wav"
    for path in (bare, final, wav):
        path.write_text("x")
    assert remove_local_file(str(wav)) == [str(wav)]
    assert remove_local_file(str(tmp_path / "other.csv")) == []
    assert remove_local_file(str(final)) == [str(bare), str(final)]  # the bare .csv first
    assert list(tmp_path.iterdir()) == []
    assert remove_local_file(str(wav)) == []  # already gone: not an error


def test_a_bare_csv_is_never_removed(tmp_path):
    bare = tmp_path / "t.csv"
    bare.write_text("x")
    assert remove_local_file(str(bare)) == []
    assert bare.exists()


def test_file_version_is_size_and_mtime_ns(tmp_path):
    path = tmp_path / "a"
    path.write_bytes(b"123")
    assert file_version(str(path)) == (3, path.stat().st_mtime_ns)
    assert file_version(str(tmp_path / "missing")) is None


# --- params


def test_params_pickle_and_hide_the_password():
    params = FtpParams("h", 21, "u", "hunter2-secret", "/r", tls="explicit")
    assert pickle.loads(pickle.dumps(params)) == params
    assert "hunter2-secret" not in repr(params) and "hunter2-secret" not in str(params)
    assert "'***'" in repr(params)
    policy = UploadPolicy(connections=2, bandwidth_limit_kbps=800)
    assert pickle.loads(pickle.dumps(policy)) == policy
    assert policy.bandwidth_bytes_per_second == 100_000


@pytest.mark.parametrize(
    "changes",
    [{"tls": "starttls"}, {"port": 0}, {"timeout": 0}, {"blocksize": 0}],
)
def test_params_reject_nonsense(changes):
    with pytest.raises(ValueError):
        FtpParams("h", **changes)


@pytest.mark.parametrize("changes", [{"connections": 0}, {"retry_base": 0}, {"retry_base": 5, "retry_max": 1}])
def test_policy_rejects_nonsense(changes):
    with pytest.raises(ValueError):
        UploadPolicy(**changes)


# --- error classification


@pytest.mark.parametrize(
    ("error", "command", "kind", "usable"),
    [
        (ftplib.error_temp("421 Too many connections"), "PASS", TooManyConnections, False),
        (ftplib.error_temp("421 Service closing"), "STOR /a", ConnectionLost, False),
        (ftplib.error_temp("452 No space"), "STOR /a", TransientFailure, True),
        (ftplib.error_temp("450 Busy"), "RNFR /a", TransientFailure, True),
        (ftplib.error_perm("552 Exceeded storage allocation"), "STOR /a", TransientFailure, True),
        (ftplib.error_perm("550 Permission denied"), "STOR /a", PermanentFailure, True),
        (ftplib.error_perm("553 Not allowed"), "STOR /a", PermanentFailure, True),
        (ftplib.error_perm("530 Login incorrect"), "USER", SessionFailure, False),
        (ftplib.error_reply("200 unexpected"), "STOR /a", ConnectionLost, False),
        (TimeoutError("timed out"), "SIZE /a", ConnectionLost, False),
        (ConnectionResetError(104, "reset"), "STOR /a", ConnectionLost, False),
        (EOFError(), "NOOP", ConnectionLost, False),
        (ssl.SSLCertVerificationError(1, "bad cert"), "AUTH", SessionFailure, False),
        (socket.gaierror(-2, "Name or service not known"), "CONNECT", ConnectionLost, False),
    ],
)
def test_classify(error, command, kind, usable):
    failure = classify(error, command=command)
    assert type(failure) is kind
    assert failure.session_usable is usable
    assert failure.command == command.split()[0]


def test_classify_scrubs_the_secret():
    failure = classify(ftplib.error_perm("530 user u pass s3cr3t refused"), command="PASS", secret="s3cr3t")
    assert "s3cr3t" not in str(failure) and "***" in str(failure)


def test_after_a_421_the_pool_admits_nobody_until_the_refused_workers_backoff_passed():
    """Contending stations take turns: a 421 pauses the whole sink for a jittered backoff, not only its worker."""
    clock = Clock()
    pool = SessionPool(4, regrow_seconds=100, clock=clock)
    assert pool.admit()
    assert pool.too_many(pause=3.0) == 1
    pool.release()
    assert not pool.try_admit()  # a slot is free, but the pause is not over
    clock.now += 3.0
    assert pool.try_admit()
    assert not pool.try_admit()  # and the limit is the one session that got in (none: at least one)
