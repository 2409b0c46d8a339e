"""The outbox scan: order by date then mtime, either way, symlinks, vanishing folders, a missing outbox."""

from __future__ import annotations

import logging
import os
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from operators.choices import DEFAULT_IGNORE_PATTERNS as PATTERNS
from operators.model import UploadJob
from pipeline.stream.scan import iter_outbox
from pipeline.stream.scan_jobs import StationNameCheck
from tests.helpers import write_file

NOON_0719 = datetime.fromisoformat("2022-07-19T12:00:00+00:00").timestamp()
NOON_0717 = NOON_0719 - 2 * 86400


def touch(path: Path, mtime: float, data: bytes = b"x") -> Path:
    write_file(path, data)
    os.utime(path, (mtime, mtime))
    return path


def make_tree(box: Path) -> dict[str, Path]:
    """Sensors with date folders, a nested folder, loose files dated by name or by mtime, and noise."""
    files = {
        "a1": touch(box / "audio" / "2022-07-18" / "rpi4-11@2022-07-18@10-00-00.wav", NOON_0719 + 400),
        "a2": touch(box / "audio" / "2022-07-19" / "rpi4-11@2022-07-19@10-00-00.wav", NOON_0719 + 100),
        "v1": touch(box / "video" / "2022-07-19" / "rpi4-11@2022-07-19@12-00-00.h264", NOON_0719 + 300),
        "deep": touch(box / "video" / "2022-07-19" / "sub" / "deep.h264", NOON_0719 + 200),
        "loose": touch(box / "rpi4-11@2022-07-20@00-00-00.wav", NOON_0719 - 500),
        "scale": touch(box / "scale" / "reading.bin", NOON_0717),
    }
    touch(box / "temp" / "2022-07-19" / "rpi4-11@2022-07-19.csv", NOON_0719)  # still growing
    touch(box / "audio" / "2022-07-19" / "x.wav.part", NOON_0719)
    touch(box / ".Trash-1000" / "2022-07-21" / "old.wav", NOON_0719)
    return files


@pytest.fixture
def tree(box: Path) -> dict[str, Path]:
    return make_tree(box)


def scanned(box: Path, order: str = "newest") -> list[str]:
    return [path for _date, _mtime, path in iter_outbox(str(box), order=order, ignore_patterns=PATTERNS)]


def test_newest_date_first_then_newest_mtime_across_sensors(box, tree):
    expected = ["loose", "v1", "deep", "a2", "a1", "scale"]  # 07-20, 07-19 by mtime, 07-18, 07-17 (mtime)
    assert scanned(box) == [str(tree[name]) for name in expected]


def test_oldest_first_is_the_reverse(box, tree):
    expected = ["scale", "a1", "a2", "deep", "v1", "loose"]
    assert scanned(box, "oldest") == [str(tree[name]) for name in expected]


def test_symlinks_are_logged_and_skipped(box, tmp_path, tree, caplog):
    outside = tmp_path / "outside"
    touch(outside / "2022-07-22" / "secret.wav", NOON_0719)
    (box / "audio" / "2022-07-19" / "link.wav").symlink_to(tree["a1"])
    (box / "linked").symlink_to(outside)
    with caplog.at_level(logging.INFO, logger="beemon.stream.backfill"):
        paths = scanned(box)
    assert paths == [str(tree[name]) for name in ["loose", "v1", "deep", "a2", "a1", "scale"]]
    assert f"skipping the symlink {box / 'linked'}" in caplog.text
    assert f"skipping the symlink {box / 'audio' / '2022-07-19' / 'link.wav'}" in caplog.text


def test_folders_vanishing_mid_scan_are_tolerated(box, tree):
    """A folder removed after the walk but before its listing just yields nothing (the sink deletes as we scan).

    A file listed and then removed still comes out here; the job stage's stat drops it.
    """
    scan = iter_outbox(str(box), ignore_patterns=PATTERNS)
    assert next(scan)[2] == str(tree["loose"])  # 07-20; the merge has listed 07-19 too, not 07-18
    shutil.rmtree(box / "audio" / "2022-07-18")
    assert [path for _d, _m, path in scan] == [str(tree[name]) for name in ["v1", "deep", "a2", "scale"]]


def test_a_missing_outbox_is_an_empty_scan(tmp_path):
    assert list(iter_outbox(str(tmp_path / "none"))) == []


def test_an_unknown_order_is_refused_before_anything_is_read(box):
    with pytest.raises(ValueError, match="order must be one of"):
        iter_outbox(str(box), order="random")


@pytest.mark.parametrize(
    ("station", "names", "warned"),
    [
        ("rpi4-11", ["rpi4-11@2022-07-19.wav", "rpi4-11@2022-07-19@01-00-00.wav", "rpi4-11@x.wav"], []),
        (
            "rpi4-11",
            ["rpi4-12@2022-07-19.wav", "rpi4-12@2022-07-20.wav", "rpi4-1@2022-07-19.wav"],
            ["rpi4-12", "rpi4-1"],
        ),
        ("rpi4-11", ["rpi4-11x@2022-07-19.wav", "rpi4-11@2022-13-45.wav", "clip.wav"], ["rpi4-11x"]),
        ("a@b", ["a@2022-07-19.wav", "a@b@2022-07-19.wav"], ["a"]),
        ("", ["@2022-07-19.wav", "x@2022-07-19.wav"], ["x"]),
    ],
)
def test_a_name_for_another_station_is_said_once_per_station(caplog, station, names, warned):
    check = StationNameCheck(station)
    with caplog.at_level(logging.WARNING, logger="beemon.stream.jobs"):
        for name in names:
            check(UploadJob(f"/outbox/audio/{name}", f"/r/{name}", 1, 1))
    said = [record.args[1] for record in caplog.records if "is named for the station" in record.getMessage()]
    assert said == warned
