"""The audit trail: one line per admin action on logger ``tierwise.audit``, written by
the tier server (repository load, unload, index) and the agent (sync, desired state,
rollback) alike.

A line is ``audit action=<what> <detail>=<value> ... client=<name> status=<http>``, for
example ``audit action=desired bundle=digits ref=3 client=ops status=200`` or
``audit action=unload model=large peer=10.0.0.7 client=ops status=200``. ``client`` is
the name the caller's token carries (``-`` on an open server or for a caller without a
valid token); requests the guard refused are recorded too (``status=401`` / ``403``).
A value a caller sent is written bare when it is plain (letters, digits, ``._:,@/+-``)
and as a JSON string otherwise, so no value can forge another field or another line.
Tokens never appear: only the client name a token maps to is written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

import orjson

__all__ = ["AUDIT_LOGGER", "audit_line", "record"]

AUDIT_LOGGER = "tierwise.audit"

log = logging.getLogger(AUDIT_LOGGER)

_PLAIN = re.compile(r"[A-Za-z0-9._:,@/+-]{1,200}")
_MAX_VALUE_CHARS = 200


def _value(value: object) -> str:
    text = "-" if value is None else str(value)
    if _PLAIN.fullmatch(text):
        return text
    if len(text) > _MAX_VALUE_CHARS:
        text = text[:_MAX_VALUE_CHARS] + "..."
    return orjson.dumps(text).decode()


def audit_line(action: str, details: Mapping[str, object], client: str | None, status: int) -> str:
    """The audit line of one action (see the module's docstring)."""
    fields = [f"action={_value(action)}"]
    fields.extend(f"{key}={_value(value)}" for key, value in details.items())
    fields.append(f"client={_value(client or '-')}")
    fields.append(f"status={int(status)}")
    return "audit " + " ".join(fields)


def record(action: str, details: Mapping[str, object], client: str | None, status: int) -> None:
    """Log the audit line of one action on ``tierwise.audit``."""
    log.info("%s", audit_line(action, details, client, status))
