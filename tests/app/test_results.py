"""What the parent does with each result of the sink: the activity it records, and whether the stream may forget the file."""

from __future__ import annotations

import os

import pytest

from operators.model import Priority, UploadJob
from pipeline.app.activity import Activity, Event
from pipeline.app.running import _lexists
from pipeline.app.stats import UploadStats
from pipeline.sink.model import Outcome, UploadResult


def result(name: str, outcome: Outcome, reply: str = "226 Transfer complete") -> UploadResult:
    return UploadResult(f"/outbox/audio/{name}", f"/srv/st/2022-07-19/audio/{name}", 4096, 0.01, 1, outcome, reply)


def test_the_activity_keeps_the_last_delivery_the_last_error_the_parked_files_and_the_failures_by_reason():
    activity = Activity()
    assert activity.last_delivery is None
    activity.record(result("a.wav", Outcome.PARKED, "550 Permission denied"))
    activity.record(result("b.wav", Outcome.RETRY, "timed out"))
    activity.record(result("c.wav", Outcome.DELIVERED))
    activity.record(result("d.wav", Outcome.GONE, "gone"))
    assert activity.parked() == {"/outbox/audio/a.wav": "550 Permission denied"}
    activity.record(result("a.wav", Outcome.DELIVERED))
    delivery = activity.last_delivery
    assert isinstance(delivery, Event)
    assert delivery.as_dict() | {"at": 0} == {
        "file": "/outbox/audio/a.wav",
        "remote": "/srv/st/2022-07-19/audio/a.wav",
        "reply": "226 Transfer complete",
        "at": 0,
        "outcome": Outcome.DELIVERED,
    }
    assert activity.started_at <= delivery.at
    assert activity.last_error is not None and activity.last_error.local_path == "/outbox/audio/b.wav"
    assert activity.parked() == {}  # delivered at last
    assert activity.failures() == {"ftp_550": 1, "timeout": 1}


def test_whether_a_delivered_file_is_still_there_is_os_path_lexists(tmp_path):
    """The stream forgets a delivered file only once it is gone (a file kept on a read-only card stays remembered)."""
    present = tmp_path / "present.wav"
    present.write_bytes(b"x")
    (tmp_path / "dangling.wav").symlink_to(tmp_path / "nowhere.wav")
    (tmp_path / "linked.wav").symlink_to(present)
    paths = [
        present,
        tmp_path / "gone.wav",
        tmp_path / "dangling.wav",
        tmp_path / "linked.wav",
        present / "below-a-file.wav",
        tmp_path,
        "",
        "/outbox\0/a.wav",
    ]
    assert [_lexists(str(path)) for path in paths] == [os.path.lexists(path) for path in paths]
    assert [_lexists(str(path)) for path in paths[:4]] == [True, False, True, True]


@pytest.mark.parametrize("outcome", list(Outcome))
def test_the_counts_follow_the_outcome_s_own_rules(outcome):
    """Delivered counts as delivered, every outcome that leaves the file waiting as failed (`Outcome.failed`), and a
    final one (`Outcome.final`) ends its wait."""
    stats = UploadStats()
    stats.submitted(UploadJob("/outbox/a.wav", "/r/a.wav", 10, 1, Priority.BACKFILL))
    stats.finished("/outbox/a.wav", outcome, 10)
    snap = stats.snapshot()
    assert (snap.delivered, snap.bytes_delivered) == ((1, 10) if outcome == Outcome.DELIVERED else (0, 0))
    assert snap.failed == int(outcome.failed)
    assert snap.queued_secondary == int(not outcome.final)


@pytest.mark.parametrize("delete_after_upload", [True, False])
def test_the_stream_forgets_a_delivered_file_the_sink_removed_on_its_word_and_the_rest_by_a_look(
    tmp_path, delete_after_upload
):
    """The usual delivery reaches the parent as "delivered" (the sink removed the file): its path is released
    without a look at the disk, once per file. Any other delivered result (kept by `delete_after_upload = false`,
    or a deletion that failed) is released only when the file is gone and the policy deletes, as before."""
    from pipeline.app.options import UploaderOptions
    from pipeline.app.running import RunningPipeline, _HandledAtOnce
    from pipeline.ftp.params import FtpParams
    from pipeline.sink.channels import Channels
    from pipeline.sink.policy import UploadPolicy

    options = UploaderOptions(
        str(tmp_path), "st", FtpParams("127.0.0.1"), UploadPolicy(delete_after_upload=delete_after_upload)
    )
    pipeline = RunningPipeline(options, UploadStats(), watch=False)
    released: list[str] = []
    pipeline._released = type("Recorder", (), {"on_next": staticmethod(released.append)})()  # type: ignore[assignment]
    channels = Channels(results=_HandledAtOnce(pipeline._handle_result))
    kept = tmp_path / "kept.wav"
    kept.write_bytes(b"x")
    here = tmp_path / "here.wav"  # the sink said it removed it, but a file of that name is back: its word counts
    here.write_bytes(b"x")

    def delivered(path) -> UploadResult:
        return UploadResult(str(path), "/r/x.wav", 1, 0.01, 1, Outcome.DELIVERED, "226 ok")

    try:
        channels._report(("delivered", (delivered(here), 0.0)))
        channels._report(("result", delivered(kept)))
        channels._report(("result", delivered(tmp_path / "gone.wav")))
    finally:
        channels.release()
    assert released == [str(here)] + ([str(tmp_path / "gone.wav")] if delete_after_upload else [])
    assert pipeline.stats.snapshot().delivered == 3
