"""ServerFeatures alone: each fact starts optimistic, flips once by a named transition, and is logged once."""

from __future__ import annotations

import logging

from pipeline.ftp.features import ServerFeatures


def test_a_fresh_server_is_assumed_to_support_everything():
    features = ServerFeatures("ftp.example:21")
    assert features.can_size and features.probe_command == "SIZE" and features.passive_command == "EPSV"
    assert not features.resumes_refused
    assert "ftp.example:21" in repr(features)


def test_size_falls_back_to_mlst_then_to_nothing():
    features = ServerFeatures()
    features.size_unsupported("502 SIZE not implemented.")
    assert features.probe_command == "MLST" and features.can_size
    features.probe_unsupported("MLST", "500 MLST not understood.")
    assert features.probe_command is None and not features.can_size


def test_probe_unsupported_flips_the_probe_that_was_sent():
    features = ServerFeatures()
    features.probe_unsupported("SIZE", "502 no")
    assert (features.size, features.mlst) == (False, True)
    features.probe_unsupported(None, "502 no")  # nothing was sent: nothing learned
    assert features.mlst


def test_epsv_is_learned_per_connection():
    features = ServerFeatures()
    features.epsv_refused("500 EPSV not understood.")
    assert features.passive_command == "PASV"
    features.size_unsupported("502 no")
    features.new_connection()
    assert features.passive_command == "EPSV"  # a reconnect tries EPSV again...
    assert not features.size  # ...but what the server itself lacks stays known


def test_a_refused_resume_is_logged_once_naming_the_server(caplog):
    caplog.set_level(logging.INFO, logger="beemon.sink")
    features = ServerFeatures("127.0.0.1:2121")
    features.resume_refused("451 Append/Restart not permitted")
    features.resume_refused("451 Append/Restart not permitted")
    assert features.resumes_refused
    lines = [r.getMessage() for r in caplog.records if "refuses to resume" in r.getMessage()]
    assert lines == [
        "127.0.0.1:2121 refuses to resume uploads (451 Append/Restart not permitted): cut uploads are sent again whole"
    ]


def test_the_unverified_warning_is_due_once():
    features = ServerFeatures()
    assert [features.warn_unverified() for _ in range(3)] == [True, False, False]
