"""The throughput rows of the table (loopback on vsftpd and pyftpdlib, 20 ms per reply, `run --once`) and the hash rows.

Each builder runs its workload (`Bench.runs` times, medians) and appends its rows and notes to the
`Bench`; the latency and scale rows are in `rows_more`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from tests.benchmarks import hash_cost, workloads
from tests.benchmarks.series import Series, Sizes, at_least, fmt, met, repeat
from tests.benchmarks.workloads import MB, Figures

#: The issue-17 target of the loopback small-files row, against a C server.
SMALL_TARGET = 1.0
#: Issue 17's `run --once` row at 20 ms per reply: at least this many times lftp and the loop.
ONCE_VS_LFTP, ONCE_VS_LOOP = 2.0, 12.0
#: Issue 14: hashing may add this much client CPU per GB; the manifest this many commands per file.
HASH_CPU_TARGET, MANIFEST_TARGET = 0.3, 0.1


@dataclass
class Bench:
    """What the builders share: the sizes, the runs per row, and the table being made."""

    sizes: Sizes
    runs: int
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: the first loopback small-files series (the memory row reads its RSS figures)
    small: Series | None = None


def small(bench: Bench, kind: str) -> None:
    sizes = bench.sizes
    series = repeat(
        f"small files, loopback, {kind}", bench.runs, partial(workloads.small_files, files=sizes.small, kind=kind)
    )
    bench.small = bench.small or series
    vs_lftp = series.ratio("ours_files_per_s", "lftp_files_per_s")
    target, ok = f">= {SMALL_TARGET:.1f}x lftp against a C server (issue 17)", met(at_least(vs_lftp, SMALL_TARGET))
    if kind != "vsftpd":
        target, ok = "none: the second column (a Python server on the client's 2 cores); was >= 1.5x lftp", "n/a"
    bench.rows.append(
        [
            f"{sizes.small:,} files of 4 KiB, loopback, {kind}",
            "files/s, end to end (4 connections, rename + size check on)",
            fmt(series.median("ours_files_per_s")),
            f"one login per file {fmt(series.median('per_login_files_per_s'))}; "
            f"lftp mirror -R --parallel=4 {fmt(series.median('lftp_files_per_s'))}",
            f"{fmt(vs_lftp, 2)}x lftp; {fmt(series.ratio('ours_files_per_s', 'per_login_files_per_s'), 1)}x loop",
            target,
            ok,
        ]
    )
    bench.notes.append(
        f"Client CPU per file (user + sys of every process of the client), loopback {kind}: beemon-uploader "
        f"{fmt(series.median('ours_cpu_ms_per_file'), 2, ' ms')}, lftp {fmt(series.median('lftp_cpu_ms_per_file'), 2, ' ms')}; "
        f"the server's under beemon-uploader {fmt(series.median('server_cpu_ms_per_file'), 2, ' ms')}."
    )
    if series.median("ours_commands_per_file") is not None:
        bench.notes.append(
            f"Commands per file (server's count, logins and folders included), loopback {kind}: "
            f"beemon-uploader {fmt(series.median('ours_commands_per_file'), 2)}, "
            f"one login per file {fmt(series.median('per_login_commands_per_file'), 2)}, "
            f"lftp {fmt(series.median('lftp_commands_per_file'), 2)}."
        )


def delayed(bench: Bench) -> None:
    sizes = bench.sizes
    run = partial(workloads.small_files, files=sizes.small_delayed, delay=0.02, per_login_files=sizes.per_login_delayed)
    series = repeat("small files, 20 ms per reply", bench.runs, run)
    vs_loop = series.ratio("ours_files_per_s", "per_login_files_per_s")
    vs_lftp = series.ratio("ours_files_per_s", "lftp_files_per_s")
    ok = None if vs_loop is None else vs_loop >= 10 and (vs_lftp is None or vs_lftp >= 1)
    bench.rows.append(
        [
            f"{sizes.small_delayed:,} files of 4 KiB, 20 ms per reply, dropped into a running `run`",
            "files/s",
            fmt(series.median("ours_files_per_s"), 1),
            f"one login per file {fmt(series.median('per_login_files_per_s'), 1)}; "
            f"lftp {fmt(series.median('lftp_files_per_s'), 1)}",
            f"{fmt(vs_loop, 1)}x loop; {fmt(vs_lftp, 2)}x lftp",
            ">= 10x loop; >= lftp at 4 connections",
            met(ok),
        ]
    )
    if sizes.per_login_delayed < sizes.small_delayed:
        rate = series.median("per_login_files_per_s") or 1
        bench.notes.append(
            f"At 20 ms per reply the one-login-per-file loop uploads {sizes.per_login_delayed} of the "
            f"{sizes.small_delayed} files per run (it takes one file at a time, so its rate does not depend "
            f"on the count; `run --once` row: {sizes.per_login_once} of {sizes.once}); all "
            f"{sizes.small_delayed} would add about "
            f"{bench.runs * (sizes.small_delayed - sizes.per_login_delayed) / rate / 60:.0f} minutes to the bench."
        )


def once(bench: Bench) -> None:
    sizes = bench.sizes
    run = partial(workloads.once_files, files=sizes.once, delay=0.02, per_login_files=sizes.per_login_once)
    series = repeat("run --once, 20 ms per reply", bench.runs, run)
    vs_loop = series.ratio("ours_files_per_s", "per_login_files_per_s")
    vs_lftp = series.ratio("ours_files_per_s", "lftp_files_per_s")
    ok = at_least(vs_loop, ONCE_VS_LOOP)
    if ok is not None and vs_lftp is not None:
        ok = ok and vs_lftp >= ONCE_VS_LFTP
    bench.rows.append(
        [
            f"{sizes.once:,} files of 4 KiB, 20 ms per reply, `run --once` end to end (start to exit), 4 connections",
            f"files/s (limit 4 / (2 x RTT) = 100); commands per file {fmt(series.median('ours_commands_per_file'), 2)}",
            f"{fmt(series.median('ours_files_per_s'), 1)} ({fmt(series.median('ours_seconds'), 2, ' s')})",
            f"one login per file {fmt(series.median('per_login_files_per_s'), 1)}; "
            f"lftp mirror -R --parallel=4 {fmt(series.median('lftp_files_per_s'), 1)} (start to exit)",
            f"{fmt(vs_lftp, 2)}x lftp; {fmt(vs_loop, 1)}x loop",
            f">= {ONCE_VS_LFTP:.0f}x lftp; >= {ONCE_VS_LOOP:.0f}x loop (issue 17)",
            met(ok),
        ]
    )


def large(bench: Bench, kind: str) -> None:
    sizes = bench.sizes
    run = partial(workloads.large_files, files=sizes.large, size=sizes.large_size, kind=kind)
    series = repeat(f"large files, {kind}", bench.runs, run)
    vs_session = series.ratio("ours_mb_per_s", "session_mb_per_s")
    bench.rows.append(
        [
            f"{sizes.large} files of {sizes.large_size // MB} MB, loopback, {kind}",
            "MB/s",
            fmt(series.median("ours_mb_per_s")),
            f"one ftplib session, 1 MiB blocks {fmt(series.median('session_mb_per_s'))}; "
            f"cp {fmt(series.median('cp_mb_per_s'))}; lftp {fmt(series.median('lftp_mb_per_s'))}",
            f"{fmt(vs_session, 2)}x session",
            ">= 0.9x the single ftplib session",
            met(at_least(vs_session, 0.9)),
        ]
    )
    vs_lftp_cpu = series.ratio("ours_cpu_s_per_gb", "lftp_cpu_s_per_gb")
    bench.rows.append(
        [
            f"the same files, {kind}",
            "client CPU s/GB (user + sys, all processes)",
            fmt(series.median("ours_cpu_s_per_gb"), 2),
            f"lftp mirror -R {fmt(series.median('lftp_cpu_s_per_gb'), 2)}",
            f"{fmt(vs_lftp_cpu, 2)}x lftp",
            "<= lftp's",
            met(None if vs_lftp_cpu is None else vs_lftp_cpu <= 1),
        ]
    )


def hashing(bench: Bench) -> None:
    sizes = bench.sizes
    run = partial(hash_cost.measure, gib=sizes.hash_gib, files=sizes.hash_files)
    series = repeat("hash cost", 1, run)  # best of three inside; one manifest count
    bench.rows += hash_rows(series.runs[0], sizes.hash_gib, sizes.hash_files)


def hash_rows(figures: Figures, gib: float, files: int) -> list[list[str]]:
    """Issue 14's rows: client CPU per GB hashing or not (beside lftp), and the manifest's commands per file."""
    none, sha = figures["cpu_none-sendfile_s_per_gb"], figures["cpu_sha256-buffered_s_per_gb"]
    added = None if none is None or sha is None else sha - none
    manifest = figures.get("manifest_commands_per_file")
    cpu = [
        f"one file of {gib:g} GiB, `UploadSession.upload`, loopback pyftpdlib (best of 3)",
        "client CPU s/GB (user + sys of the upload call)",
        f"checksum none (sendfile) {fmt(none, 2)}; sha256 (hashed as sent, buffered) {fmt(sha, 2)}",
        f"lftp put {fmt(figures.get('cpu_lftp_s_per_gb'), 2)} (whole process); none, buffered "
        f"{fmt(figures.get('cpu_none-buffered_s_per_gb'), 2)}; sha256, sendfile + a second read "
        f"{fmt(figures.get('cpu_sha256-sendfile-read_s_per_gb'), 2)}",
        f"sha256 adds {fmt(added, 2, ' s/GB')}",
        f"hashing adds <= {HASH_CPU_TARGET} s/GB (issue 14)",
        met(None if added is None else added <= HASH_CPU_TARGET),
    ]
    commands = [
        f"{files} files of one past day, `run --once`, loopback pyftpdlib (no hash command: size checks)",
        "commands per file (server's count, logins and folders included)",
        f"checksum sha256 {fmt(figures.get('commands_per_file_sha256'), 2)}, of which the manifest {fmt(manifest, 3)} "
        f"({fmt(None if manifest is None else manifest * files)} commands for the day)",
        f"checksum none {fmt(figures.get('commands_per_file_none'), 2)}",
        "",
        f"the manifest: no round trip per file (< {MANIFEST_TARGET} commands per file)",
        met(None if manifest is None else manifest < MANIFEST_TARGET),
    ]
    return [cpu, commands]
