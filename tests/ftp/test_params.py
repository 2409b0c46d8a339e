"""FtpParams and UploadPolicy: picklable plain values that hide the password and refuse nonsense."""

from __future__ import annotations

import pickle

import pytest

from pipeline.ftp.params import FtpParams
from pipeline.sink.policy import UploadPolicy


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
