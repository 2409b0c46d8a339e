"""A reload (SIGHUP): read the settings again; use them only if they load and may change while running."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from typing import Any

from pipeline.app.options import UploaderOptions

log = logging.getLogger("beemon.uploader")


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The option names that differ (nested dataclasses by dotted name); values are not shown (secrets)."""
    changed = []
    for field in dataclasses.fields(old):
        a, b = getattr(old, field.name), getattr(new, field.name)
        if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
            changed += changed_keys(a, b, f"{prefix}{field.name}.")
        elif a != b:
            changed.append(prefix + field.name)
    return changed


def reloaded_options(
    load: Callable[[], UploaderOptions] | None,
    current: UploaderOptions,
    stopping: Callable[[], bool] = lambda: False,
) -> UploaderOptions | None:
    """The new options, or None (one line logged) when nothing is to change: the running ones stay.

    A load that fails once `stopping()` (a stop came while it read, and cut it short) is no error: the
    uploader stops, and its line says so."""
    from pipeline.app.uploader import check_options
    from settings import SettingsError

    if load is None:
        log.warning("reload asked, but this uploader was given its settings directly: nothing to read again")
        return None
    try:
        new = load()
        check_options(new)
        if os.path.abspath(new.outbox) != os.path.abspath(current.outbox):
            raise SettingsError(
                f"setting local_output_directory = {new.outbox!r} cannot change on reload (the outbox's lock is held"
                " on the old one): restart the service instead"
            )
    except (SettingsError, ValueError) as error:
        if stopping():
            log.warning("reload abandoned, the uploader stops: %s", error)
        else:
            log.error("reload failed, the running settings stay: %s", error)
        return None
    if current.embedded and new.embedded:  # a random password each read: keep the embedded server's
        new = new.replace(ftp=dataclasses.replace(new.ftp, password=current.ftp.password))
    changed = changed_keys(current, new)
    if not changed:
        log.info("reload: the settings did not change")
        return None
    log.info("reload: changed %s; rebuilding the pipeline (transfers in flight finish first)", ", ".join(changed))
    return new
