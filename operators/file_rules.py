"""The day-file rule of scalar sensors, in one place: a bare `X.csv` grows all day, `X.csv.final` ends it.

A sensor appends to `X.csv` during its day and writes `X.csv.final` when the day's file is
complete. So a bare `.csv` is never uploaded (nor removed) on its own account; the `.final` is
delivered as `X.csv`, and is the same file as `X.csv`, in its last state. Every rule on an
extension ignores case: `X.CSV` grows like `X.csv`, `X.CSV.FINAL` ends it. Pure.
"""

from __future__ import annotations

CSV_SUFFIX = ".csv"
#: What a finished day's file ends with (any case), appended to its bare `X.csv`'s name.
FINAL_EXTENSION = ".final"
FINAL_SUFFIX = CSV_SUFFIX + FINAL_EXTENSION
#: The spellings of `.final` looked for beside a bare `X.csv` (see `final_names`).
FINAL_SPELLINGS = (FINAL_EXTENSION, ".FINAL", ".Final")


def is_final(name: str) -> bool:
    """`X.csv.final` (any case): the day's finished state of `X.csv`."""
    return name.lower().endswith(FINAL_SUFFIX)


def is_daily_csv(name: str) -> bool:
    """A bare `X.csv` (any case): a sensor's file for one day, appended to until its `.final` comes."""
    return name.lower().endswith(CSV_SUFFIX)


def bare_csv_of(final: str) -> str:
    """`X.csv.final` -> `X.csv` (the case of `X.csv` kept as written)."""
    return final[: -len(FINAL_EXTENSION)]


def final_names(csv: str) -> tuple[str, ...]:
    """The names the `.final` of a bare `X.csv` may have: `X.csv.final`, `X.csv.FINAL`, `X.csv.Final`."""
    return tuple(csv + spelling for spelling in FINAL_SPELLINGS)


def delivered_file(path: str) -> str:
    """The file a local path delivers: `X.csv.final` is the last state of `X.csv`, the same file."""
    return bare_csv_of(path) if is_final(path) else path
