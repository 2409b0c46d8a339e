"""The remote-path model: every mapping rule, with exact expected paths, plus properties."""

from __future__ import annotations

import posixpath
from datetime import datetime
from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operators.remote_path import remote_name, remote_path_for, remote_path_of_parts, safe_segment, sensor_of

ROOT = "/usr/local/bee/appmais"
# Noon UTC on 2022-07-19: the same local date in every time zone from UTC-11 to UTC+11.
NOON_0719 = datetime.fromisoformat("2022-07-19T12:00:00+00:00").timestamp()


def rp(relative: str, station: str = "fallback", mtime: float = NOON_0719, root: str = ROOT) -> str | None:
    return remote_path_for(relative, remote_root=root, station=station, mtime=mtime)


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        (
            "audio/2022-07-19/rpi4-11@2022-07-19@14-30-00.wav",
            f"{ROOT}/fallback/2022-07-19/audio/rpi4-11@2022-07-19@14-30-00.wav",
        ),
        (
            "video/2022-07-19/rpi4-11@2022-07-19@14-30-00.h264",
            f"{ROOT}/fallback/2022-07-19/video/rpi4-11@2022-07-19@14-30-00.h264",
        ),
        ("temp/2022-07-19/rpi4-11@2022-07-19.csv.final", f"{ROOT}/fallback/2022-07-19/temp/rpi4-11@2022-07-19.csv"),
        ("cpu/2022-07-19/rpi4-12@2022-07-19.csv.final", f"{ROOT}/fallback/2022-07-19/cpu/rpi4-12@2022-07-19.csv"),
        # The name's date wins over the folder's.
        (
            "audio/2022-07-20/rpi4-11@2022-07-19@23-59-59.wav",
            f"{ROOT}/fallback/2022-07-19/audio/rpi4-11@2022-07-19@23-59-59.wav",
        ),
        # No convention in the name: station from the setting, date from the folder.
        ("scale/2022-07-18/reading.bin", f"{ROOT}/fallback/2022-07-18/scale/reading.bin"),
        # No date anywhere: the modification date.
        ("scale/reading.bin", f"{ROOT}/fallback/2022-07-19/scale/reading.bin"),
        # Directly in the outbox: sensor by extension.
        ("rpi4-11@2022-07-19@01-00-00.wav", f"{ROOT}/fallback/2022-07-19/audio/rpi4-11@2022-07-19@01-00-00.wav"),
        ("clip.h264", f"{ROOT}/fallback/2022-07-19/video/clip.h264"),
        ("clip.mp4", f"{ROOT}/fallback/2022-07-19/video/clip.mp4"),
        ("rpi4-11@2022-07-19.csv.final", f"{ROOT}/fallback/2022-07-19/temp/rpi4-11@2022-07-19.csv"),
        ("notes.txt", f"{ROOT}/fallback/2022-07-19/misc/notes.txt"),
        # An invalid date in the name is no convention: station and date fall back.
        ("audio/2022-07-19/rpi4-11@2022-13-45.wav", f"{ROOT}/fallback/2022-07-19/audio/rpi4-11@2022-13-45.wav"),
    ],
)
def test_mapping_rules(relative: str, expected: str) -> None:
    assert rp(relative) == expected


def test_bare_csv_maps_to_nothing_yet() -> None:
    assert rp("temp/2022-07-19/rpi4-11@2022-07-19.csv") is None
    assert rp("rpi4-11@2022-07-19.csv") is None
    assert remote_name("x.csv") is None
    assert remote_name("x.csv.final") == "x.csv"


def test_remote_root_is_normalized() -> None:
    assert rp("audio/x.wav", root="/srv/bee/") == "/srv/bee/fallback/2022-07-19/audio/x.wav"
    assert rp("audio/x.wav", root="/srv/../bee") == "/bee/fallback/2022-07-19/audio/x.wav"


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        ("..", "_"),
        (".", "_"),
        ("", "_"),
        ("a/b", "a_b"),
        ("a\\b", "a_b"),
        ("line\nbreak", "line_break"),
        ("tab\there", "tab_here"),
        ("del\x7f", "del_"),
        ("with space.wav", "with space.wav"),
        ("-leading-dash.wav", "-leading-dash.wav"),
        ("ünïcödé.wav", "ünïcödé.wav"),
    ],
)
def test_unsafe_characters_are_replaced(segment: str, expected: str) -> None:
    assert safe_segment(segment) == expected


def test_dotdot_names_and_station_cannot_escape() -> None:
    assert rp("../../etc/passwd", station="..") == f"{ROOT}/_/2022-07-19/_/passwd"
    assert rp("audio/..", station="st") == f"{ROOT}/st/2022-07-19/audio/_"


names = st.text(min_size=1, max_size=30)


@given(st.lists(names, min_size=1, max_size=4), names, st.floats(0, 4e9))
def test_result_always_lies_under_remote_root(parts: list[str], station: str, mtime: float) -> None:
    relative = "/".join(parts)
    result = rp(relative, station=station, mtime=mtime)
    if result is None:
        # Only a growing .csv, or a path with no name at all ("", ".", "/"), maps to nothing.
        parsed = PurePosixPath(relative)
        assert not parsed.parts or parsed.parts == ("/",) or remote_name(parsed.parts[-1]) is None
        return
    assert posixpath.normpath(result) == result
    assert result.startswith(ROOT + "/")
    segments = result[len(ROOT) + 1 :].split("/")
    assert len(segments) == 4
    for segment in segments:
        assert segment not in ("", ".", "..")
        assert not any(ord(c) < 0x20 or c == "\x7f" or c == "\\" for c in segment)


segments = st.text(alphabet="ab./@-\\\n", max_size=12)


@given(segments, st.sampled_from(["/srv/bee", "", "/", "srv//bee/"]))
def test_the_path_is_split_as_pathlib_splits_it(relative: str, root: str) -> None:
    """The mapping splits the relative path as a string where that gives pathlib's segments, and parses it otherwise:
    every spelling (empty, `.` and `//` segments, a leading `/`) maps as `PurePosixPath(relative).parts` says."""
    parts = tuple(p for p in PurePosixPath(relative).parts if p not in ("", "/"))
    expected = remote_path_of_parts(parts, remote_root=root, station="st", mtime=NOON_0719)
    assert remote_path_for(relative, remote_root=root, station="st", mtime=NOON_0719) == expected


@given(st.lists(st.sampled_from(["a", ".", "wav", "WAV", "h264", "csv"]), max_size=5).map("".join))
def test_the_sensor_by_extension_is_pathlibs_suffix(name: str) -> None:
    """A file right in the outbox gets its sensor by `PurePosixPath(name).suffix` (`.wav` alone has none)."""
    by_suffix = {".wav": "audio", ".h264": "video", ".mp4": "video", ".csv": "temp"}
    assert sensor_of((name,), name) == by_suffix.get(PurePosixPath(name).suffix.lower(), "misc")


@pytest.mark.parametrize("mtime", [1e20, -1e20, float("inf"), float("nan")])
def test_a_modification_time_the_platform_cannot_convert_gives_undated(mtime: float) -> None:
    assert rp("scale/reading.bin", mtime=mtime) == f"{ROOT}/fallback/undated/scale/reading.bin"
