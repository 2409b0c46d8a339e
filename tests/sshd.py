"""OpenSSH's sshd on loopback for the SFTP tests: a second daemon in the foreground with its own config.

`start_sshd(folder)` runs `sshd -D -e -f <folder>/sshd_config` on 127.0.0.1 with its own host key,
`Subsystem sftp internal-sftp` and key authentication for the test's user (root in CI) from an
`authorized_keys` file under `folder`; a second port on the same daemon serves SFTP read-only
(`internal-sftp -R`), for the tests of a refused write, and a third one refuses renames
(`internal-sftp -P rename,posix-rename`), for a server that takes files only under their own names. The machine's own sshd, its config and its
service are neither read nor touched. `/run/sshd` (the privilege-separation folder) is created
when missing. When sshd cannot be had, the tests skip naming it (fail under CI=true).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.sftp.params import SftpParams
from tests.servers import ServerFiles, _start, find_server, free_port, unavailable


@dataclass
class SshdFiles:
    """A running sshd: the server, its read-only port, the client key, the known_hosts that trusts it, and a
    port whose SFTP refuses renames (`rename` and `posix-rename`: a drop box that only takes new files)."""

    server: ServerFiles
    readonly_port: int
    key_file: Path
    known_hosts: Path
    host_key_line: str
    no_rename_port: int = 0

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def username(self) -> str:
        return self.server.username

    @property
    def root(self) -> Path:
        return self.server.root

    def files(self) -> dict[str, bytes]:
        return self.server.files()

    def sftp_params(self, **extra: Any) -> SftpParams:
        """The transport's parameters for this daemon (its port, user, key, known_hosts and root), with `extra`."""
        return SftpParams(
            "127.0.0.1",
            self.port,
            self.username,
            key_file=str(self.key_file),
            known_hosts=str(self.known_hosts),
            remote_root=str(self.root),
            **extra,
        )

    def alive(self) -> bool:
        return self.server.alive()

    def stop(self) -> None:
        """End the daemon and the sessions it forked (each runs in a session of its own: not in its group)."""
        sessions = _children(self.server.process.pid)
        self.server.stop()
        for pid in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def restart(self) -> None:
        """Start the daemon again on the same ports (after `stop`): the outage ends."""
        config = self.server.log.parent / "sshd_config"
        process = _start("sshd", [str(_sshd_binary()), "-D", "-e", "-f", str(config)], self.port, self.server.log)
        assert process is not None, self.server.log.read_text()[-2000:]
        self.server.process = process


def _children(parent: int) -> list[int]:
    """The pids of `parent`'s descendants, from /proc."""
    by_parent: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                by_parent.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [parent]
    while todo:
        for child in by_parent.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _sshd_binary() -> Path:
    found = find_server("openssh-server", "sshd")
    if found is None:
        unavailable("OpenSSH's sshd (Debian package openssh-server) is not installed")
    return found[0]  # type: ignore[index]


def _keygen(path: Path) -> None:
    """An Ed25519 key pair in OpenSSH's formats (asyncssh writes them: no ssh-keygen needed)."""
    import asyncssh

    key = asyncssh.generate_private_key("ssh-ed25519")
    path.write_bytes(key.export_private_key())
    path.chmod(0o600)
    path.with_suffix(".pub").write_bytes(key.export_public_key())


def start_sshd(folder: Path) -> SshdFiles:
    """sshd in the foreground on three free loopback ports (the second read-only, the third without renames);
    uploads land under `folder/root`."""
    binary = _sshd_binary()
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    root = folder / "root"
    root.mkdir(exist_ok=True)
    host_key, client_key = folder / "host_key", folder / "client_key"
    for key in (host_key, client_key):
        if not key.exists():
            _keygen(key)
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    (folder / "authorized_keys").chmod(0o600)
    log = folder / "sshd.log"
    for _ in range(3):
        port, readonly, no_rename = free_port(), free_port(), free_port()
        config = folder / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress 127.0.0.1:{port}",
                    f"ListenAddress 127.0.0.1:{readonly}",
                    f"ListenAddress 127.0.0.1:{no_rename}",
                    f"HostKey {host_key}",
                    f"PidFile {folder / 'sshd.pid'}",
                    f"AuthorizedKeysFile {folder / 'authorized_keys'}",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "LogLevel VERBOSE",
                    "MaxStartups 100",
                    "MaxSessions 50",
                    "Subsystem sftp internal-sftp",
                    f"Match LocalPort {readonly}",
                    "    ForceCommand internal-sftp -R",
                    f"Match LocalPort {no_rename}",
                    "    ForceCommand internal-sftp -P rename,posix-rename",
                    "",
                ]
            )
        )
        process = _start("sshd", [str(binary), "-D", "-e", "-f", str(config)], port, log)
        if process is not None:
            break
    else:
        raise AssertionError(f"sshd would not start: {log.read_text()[-2000:]}")
    public = (host_key.with_suffix(".pub")).read_text().split()
    line = f"[127.0.0.1]:{port},[127.0.0.1]:{readonly},[127.0.0.1]:{no_rename} {public[0]} {public[1]}"
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(line + "\n")
    user = getpass.getuser()
    server = ServerFiles("sshd", port, root, user, "", log, process, remote_root=str(root))
    return SshdFiles(server, readonly, client_key, known_hosts, line, no_rename)
