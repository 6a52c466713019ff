"""The audit trail of the tier server: one line per admin request on logger
``tierwise.audit``, for example::

    audit action=unload model=large client=ops status=200 peer=10.0.0.7

``client`` is the name the caller's token carries (``-`` on an open server or without a
valid token); a token never appears. Values that come from the request (a model name)
are written bare when they hold only safe characters and quoted as JSON strings
otherwise, so a name cannot forge a line or a field.
"""

from __future__ import annotations

import logging
import re

import orjson

__all__ = ["audit_line", "audit_log", "audit_value"]

audit_log = logging.getLogger("tierwise.audit")

_BARE = re.compile(r"[A-Za-z0-9_.:/@+-]{1,128}")
_MAX_CHARS = 128


def audit_value(value: str | int | None) -> str:
    """``value`` as an audit field: bare when safe, else a JSON string (cut at 128
    characters); ``-`` for None or empty."""
    if value is None or value == "":
        return "-"
    text = str(value)
    if _BARE.fullmatch(text):
        return text
    if len(text) > _MAX_CHARS:
        text = text[:_MAX_CHARS] + "..."
    return orjson.dumps(text).decode()


def audit_line(
    action: str, *, model: str | None, client: str | None, status: int, peer: str | None
) -> str:
    """One audit line, fields in a fixed order."""
    return (
        f"audit action={audit_value(action)} model={audit_value(model)} "
        f"client={audit_value(client)} status={status} peer={audit_value(peer)}"
    )
