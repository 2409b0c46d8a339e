"""What is wrong with a setting, said without dynaconf: `SettingsError`, `envvar`, the CA-file check.

`run`'s long-lived parent reads its settings in a short-lived child (`pipeline.app.settings_apart`)
and never imports dynaconf (some 6 MB of an idle station's memory, issue 17); it still needs the
error it turns into exit code 2, and `Uploader` checks the CA file of options from any source.
"""

from __future__ import annotations


class SettingsError(ValueError):
    """Settings that cannot be used; the message is one line for the user (exit code 2)."""


def envvar(key: str) -> str:
    """The environment variable that overrides `key` (`ftp.port` -> `BEEMON_FTP__PORT`)."""
    return "BEEMON_" + key.upper().replace(".", "__")


def ca_file_problem(path: str) -> str | None:
    """Why `path` cannot serve as `ftp.ca_file` (one line for the user), or None when it loads.

    Checked at start: found only at the first connect, a bad file would leave the uploader running
    and never uploading.
    """
    if not path:
        return None
    import ssl  # only with a CA file: without TLS, `run`'s parent loads neither ssl nor OpenSSL (issue 17)

    try:
        ssl.create_default_context(cafile=path)
    except FileNotFoundError:
        reason = "does not exist"
    except IsADirectoryError:
        reason = "is a folder"
    except PermissionError:
        reason = "cannot be read (permission denied)"
    except ssl.SSLError:
        reason = "holds no PEM certificate"
    except (OSError, ValueError) as error:
        reason = f"cannot be loaded ({error})"
    else:
        return None
    return (
        f"setting ftp.ca_file = {path!r} is not valid: it {reason}; it must be a PEM file of the certificate"
        f" authority that signed the server's certificate, or empty for the system's; fix it in settings.toml"
        f" or {envvar('ftp.ca_file')}"
    )
