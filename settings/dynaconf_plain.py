"""dynaconf, imported without its jinja2 formatter, whatever else is installed.

dynaconf imports jinja2 at its own import whenever jinja2 is installed (for the `@jinja` token),
though these settings use no jinja: 20-30 ms of every start and about 1.7 MB of the parent's memory
(issue 17's figures), and a behaviour that would differ between a station whose Python has jinja2
(Flask, Sphinx) and one without. So jinja2 is hidden only while dynaconf's parser module is first
imported, and visible again right after: code of the same process (an orchestrator's) imports it as
usual. `@jinja` in a setting is not supported (`@format` is).

The settings modules take dynaconf's names from here, so this runs before dynaconf is imported
whichever of them is imported first (the package itself imports none of them until asked: see
`settings/__init__.py`).
"""

from __future__ import annotations

import sys


def _import_parser() -> None:
    if "dynaconf.utils.parse_conf" in sys.modules or "jinja2" in sys.modules:
        return  # already decided (or jinja2 already paid for by someone else)
    sys.modules["jinja2"] = None  # type: ignore[assignment]  # makes `import jinja2` raise ImportError
    try:
        import dynaconf.utils.parse_conf  # noqa: F401
    finally:
        if "jinja2" in sys.modules and sys.modules["jinja2"] is None:
            del sys.modules["jinja2"]


_import_parser()

from dynaconf import Dynaconf, ValidationError, Validator  # noqa: E402  (after the parser, imported plainly)
from dynaconf.utils.inspect import get_history  # noqa: E402

__all__ = ["Dynaconf", "ValidationError", "Validator", "get_history"]
