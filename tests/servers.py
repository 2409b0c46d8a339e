"""Real FTP servers on loopback for any test package: ProFTPD and vsftpd from Debian, in the foreground.

Each server runs as a child of the test with its own config, pid, scoreboard and log files under the
test's temporary folder, on a free loopback port; a service the package may have started elsewhere
is neither needed nor touched. The binaries come from PATH (an apt-installed copy) or from
`var/servers` (`make servers`, tools/install-servers.sh, unpacks Debian's packages there). When a
server cannot be had, its tests skip naming what is missing, except under CI=true, where they fail.

- `proftpd(**directives)`: ProFTPD with Debian's defaults for what the tests look at (no
  `AllowStoreRestart`: a REST + STOR is answered "451 Append/Restart not permitted"), one account
  from an `AuthUserFile`, chrooted to its home (`ServerFiles.root`). `proftpd(**DIGEST)` loads
  mod_digest (HASH, XSHA256).
- `vsftpd(tls="none" | "explicit" | "implicit", cert_file=...)`: vsftpd's anonymous account with
  write rights, run as the test's user (see `start_vsftpd`); FTPS with a trustme certificate and
  vsftpd's default `require_ssl_reuse=YES`.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import free_port, server_files

REPO = Path(__file__).resolve().parents[1]
UNPACKED = Path(os.environ.get("BEEMON_TEST_SERVERS") or REPO / "var" / "servers")
START_SECONDS = 15.0


def unavailable(reason: str) -> None:
    """Skip the test, naming what is missing; under CI=true fail instead (CI must run every test)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: a missing server fails the run; run `make servers` as root)")
    pytest.skip(f"{reason}; run `make servers` as root to install it")


def find_server(package: str, binary: str) -> tuple[Path, Path] | None:
    """(binary, its package's root) from PATH or /usr/sbin, else from the unpacked copy; None when absent."""
    for candidate in (shutil.which(binary), f"/usr/sbin/{binary}"):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate), Path("/")
    unpacked = UNPACKED / package
    if os.access(unpacked / "usr" / "sbin" / binary, os.X_OK):
        return unpacked / "usr" / "sbin" / binary, unpacked
    return None


@dataclass
class ServerFiles:
    """A running server: where to connect, the account, and the folder its uploads land in."""

    name: str
    port: int
    root: Path
    username: str
    password: str
    log: Path
    process: subprocess.Popen[bytes]
    host: str = "127.0.0.1"
    tls: str = "none"
    #: the remote path of `root` (ProFTPD chroots its sessions there, vsftpd's see the real file system)
    remote_root: str = "/"

    def files(self) -> dict[str, bytes]:
        """Every file under the root but the day manifests, by path relative to it."""
        return server_files(self.root)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """End the server and the session processes it forked (its own process group)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # session children outliving the master


def _start(name: str, command: list[str], port: int, log: Path) -> subprocess.Popen[bytes] | None:
    """Run `command` in its own process group; the process once `port` accepts, None if it exited first."""
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return process
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(5)
    raise AssertionError(f"{name} did not listen on port {port} within {START_SECONDS} s: {log.read_text()[-2000:]}")


def _started(name: str, make_command: Callable[[int], list[str]], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start on a free port, again on another if that one was taken meanwhile (a race with other tests)."""
    for _ in range(3):
        port = free_port()
        process = _start(name, make_command(port), port, log)
        if process is not None:
            return process, port
    raise AssertionError(f"{name} would not start: {log.read_text()[-2000:]}")


def _crypt(password: str) -> str:
    """A SHA-512 crypt(3) hash, as an AuthUserFile holds."""
    openssl = shutil.which("openssl")
    if openssl is None:
        unavailable("openssl is needed to write ProFTPD's AuthUserFile")
    salt = secrets.token_hex(4)
    done = subprocess.run(
        [openssl, "passwd", "-6", "-salt", salt, password], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


#: ProFTPD's mod_digest (Debian's proftpd-core ships it): FEAT lists HASH (SHA-256 among its
#: algorithms) and XSHA256. Its cache is off, so a file changed behind the server's back is hashed anew.
DIGEST = {"LoadModule": "mod_digest.c", "DigestEngine": "on", "DigestCache": "off"}


def start_proftpd(folder: Path, **directives: str) -> ServerFiles:
    """ProFTPD in the foreground (`proftpd -n -c <conf>`), one account chrooted to `folder/home`."""
    found = find_server("proftpd-core", "proftpd")
    if found is None:
        unavailable("ProFTPD (Debian package proftpd-core) is not installed")
    binary, package_root = found  # type: ignore[misc]
    folder.mkdir(parents=True, exist_ok=True)
    home = folder / "home"
    home.mkdir(exist_ok=True)
    uid, gid = os.getuid(), os.getgid()
    user, group = pwd.getpwuid(uid).pw_name, grp.getgrgid(gid).gr_name
    username, password = f"station{secrets.token_hex(2)}", f"pw-{secrets.token_urlsafe(12)}"
    passwd, groups = folder / "passwd", folder / "group"
    passwd.write_text(f"{username}:{_crypt(password)}:{uid}:{gid}::{home}:/bin/sh\n")
    groups.write_text(f"{group}:x:{gid}:{username}\n")
    passwd.chmod(0o600)  # ProFTPD refuses a world-readable AuthUserFile
    groups.chmod(0o600)
    settings = {
        "ServerName": '"beemon test ProFTPD"',
        "ServerType": "standalone",
        "DefaultServer": "on",
        "DefaultAddress": "127.0.0.1",
        "UseIPv6": "off",
        "PidFile": str(folder / "proftpd.pid"),
        "ScoreboardFile": str(folder / "proftpd.scoreboard"),
        "DelayTable": "none",
        "User": user,
        "Group": group,
        "RootLogin": "on" if uid == 0 else "off",
        "AuthOrder": "mod_auth_file.c",
        "AuthUserFile": str(passwd),
        "AuthGroupFile": str(groups),
        "RequireValidShell": "off",
        "WtmpLog": "off",
        "UseReverseDNS": "off",
        "DefaultRoot": "~",
        "AllowOverwrite": "on",
        "Umask": "022",
        "MaxInstances": "60",
        "SystemLog": str(folder / "system.log"),
        "TransferLog": "none",
        "ModulePath": str(package_root / "usr" / "lib" / "proftpd"),
    }
    settings.update(directives)
    log = folder / "proftpd.out"

    def command(port: int) -> list[str]:
        lines = [f"{key} {value}" for key, value in settings.items()] + [f"Port {port}"]
        conf = folder / "proftpd.conf"
        conf.write_text("\n".join(lines) + "\n")
        return [str(binary), "-n", "-c", str(conf)]

    process, port = _started("proftpd", command, log)
    return ServerFiles("proftpd", port, home, username, password, log, process)


def vsftpd_settings(folder: Path, root: Path) -> dict[str, str]:
    """vsftpd's configuration for a foreground server whose anonymous account writes under `root`
    (see `start_vsftpd`); `listen_address` and `listen_port` are the caller's to add or change."""
    return {
        "listen": "YES",
        "listen_ipv6": "NO",
        "listen_address": "127.0.0.1",
        "background": "NO",
        "run_as_launching_user": "YES",
        "ftp_username": pwd.getpwuid(os.getuid()).pw_name,
        "anonymous_enable": "YES",
        "local_enable": "NO",
        "no_anon_password": "YES",
        "write_enable": "YES",
        "anon_upload_enable": "YES",
        "anon_mkdir_write_enable": "YES",
        "anon_other_write_enable": "YES",
        "anon_world_readable_only": "NO",
        "anon_umask": "022",
        "anon_root": str(root),
        "seccomp_sandbox": "NO",
        "max_clients": "60",
        "max_per_ip": "60",
        "xferlog_enable": "NO",
        "vsftpd_log_file": str(folder / "vsftpd.log"),
    }


def start_vsftpd(folder: Path, *, tls: str = "none", cert_file: str = "", **options: str) -> ServerFiles:
    """vsftpd in the foreground (`listen=YES`, `background=NO`): its anonymous account, with write rights.

    vsftpd authenticates local and virtual users through PAM and the system's user table, and
    chroots anonymous sessions into the home of `ftp_username`: all of it the machine's, not the
    test's. So it runs as the launching user (`run_as_launching_user`), without chroot: a session
    starts in `folder/root` and sees the real file system, so paths are absolute (`ServerFiles.remote_root`).
    """
    found = find_server("vsftpd", "vsftpd")
    if found is None:
        unavailable("vsftpd (Debian package vsftpd) is not installed")
    binary, _ = found  # type: ignore[misc]
    root = folder / "root"
    root.mkdir(parents=True, exist_ok=True)
    settings = vsftpd_settings(folder, root)
    if tls != "none":
        settings.update(
            ssl_enable="YES",
            allow_anon_ssl="YES",
            force_anon_logins_ssl="YES",
            force_anon_data_ssl="YES",
            rsa_cert_file=cert_file,
            rsa_private_key_file=cert_file,
            implicit_ssl="YES" if tls == "implicit" else "NO",
            ssl_ciphers="HIGH",  # the default, DES-CBC3-SHA, is gone from OpenSSL 3
            require_ssl_reuse="YES",
        )
    settings.update(options)
    log = folder / "vsftpd.out"

    def command(port: int) -> list[str]:
        conf = folder / "vsftpd.conf"
        conf.write_text("".join(f"{key}={value}\n" for key, value in {**settings, "listen_port": port}.items()))
        conf.chmod(0o600)
        return [str(binary), str(conf)]

    process, port = _started("vsftpd", command, log)
    return ServerFiles("vsftpd", port, root, "anonymous", "", log, process, tls=tls, remote_root=str(root))


@dataclass
class _Started:
    servers: list[ServerFiles] = field(default_factory=list)


@pytest.fixture
def proftpd(tmp_path: Path) -> Iterator[Callable[..., ServerFiles]]:
    """`proftpd(**directives)`: a started ProFTPD (see `start_proftpd`); stopped at teardown."""
    started = _Started()

    def make(**directives: str) -> ServerFiles:
        server = start_proftpd(tmp_path / f"proftpd-{len(started.servers)}", **directives)
        started.servers.append(server)
        return server

    yield make
    for server in started.servers:
        server.stop()


@pytest.fixture
def vsftpd(tmp_path: Path) -> Iterator[Callable[..., ServerFiles]]:
    """`vsftpd(tls=..., cert_file=..., **options)`: a started vsftpd (see `start_vsftpd`); stopped at teardown."""
    started = _Started()

    def make(**options: str) -> ServerFiles:
        server = start_vsftpd(tmp_path / f"vsftpd-{len(started.servers)}", **options)
        started.servers.append(server)
        return server

    yield make
    for server in started.servers:
        server.stop()
