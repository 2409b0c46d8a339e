"""How a transport's params print: every field, the secret masked (logs and reprs print params objects)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

#: What a set secret prints as.
MASK = "***"


def masked_repr(params: Any, secret: str) -> str:
    """`Type(field=value, ...)` of a dataclass, with the field named `secret` shown as `MASK` when set."""

    def shown(name: str) -> str:
        value = getattr(params, name)
        return repr(MASK) if name == secret and value else repr(value)

    return f"{type(params).__name__}({', '.join(f'{f.name}={shown(f.name)}' for f in fields(params))})"
