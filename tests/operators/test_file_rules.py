"""The day-file rule, in any case: a bare `X.csv` grows, `X.csv.final` is the same file in its last state."""

from __future__ import annotations

from operators.file_rules import bare_csv_of, delivered_file, final_names, is_daily_csv, is_final


def test_a_final_in_any_case_ends_its_csv_and_delivers_it():
    for final in ("s@2024-05-01.csv.final", "s@2024-05-01.CSV.FINAL", "s@2024-05-01.csv.Final"):
        assert is_final(final) and not is_daily_csv(final)
        assert delivered_file(final) == bare_csv_of(final) == final[: -len(".final")]
    assert is_daily_csv("s@2024-05-01.CSV") and not is_final("s@2024-05-01.CSV")
    assert delivered_file("a/s@2024-05-01.csv") == "a/s@2024-05-01.csv"
    assert delivered_file("a/x.wav") == "a/x.wav"


def test_the_finals_looked_for_beside_a_csv_are_the_spellings_a_station_writes():
    assert final_names("d/X.csv") == ("d/X.csv.final", "d/X.csv.FINAL", "d/X.csv.Final")
    assert all(is_final(name) and bare_csv_of(name) == "d/X.csv" for name in final_names("d/X.csv"))
