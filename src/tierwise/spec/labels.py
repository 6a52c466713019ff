"""Node labels, by Kubernetes' rules: what an edge node may carry (``labels:`` in
``agent.yaml``) and what a control plane's selectors match.

A key is an optional DNS subdomain prefix and ``/``, then a name; a name, and a value
unless empty, is at most 63 letters, digits, ``-``, ``_`` or ``.``, beginning and ending
with a letter or digit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from tierwise.errors import ConfigError

__all__ = ["KEY_RULE", "MAX_LABELS", "VALUE_RULE", "check_labels", "valid_key", "valid_value"]

#: Most labels one node may carry.
MAX_LABELS = 64

_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
_NAME_RULE = (
    "at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
)
#: What a label key may be, and a label value.
KEY_RULE = f"an optional DNS prefix and '/', then a name of {_NAME_RULE}"
VALUE_RULE = f"empty, or {_NAME_RULE}"


def valid_key(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    if slash and (len(prefix) > 253 or _DNS.fullmatch(prefix) is None):
        return False
    return len(name) <= 63 and _NAME.fullmatch(name) is not None


def valid_value(value: str) -> bool:
    return value == "" or (len(value) <= 63 and _NAME.fullmatch(value) is not None)


def check_labels(labels: Mapping[str, str], where: str = "labels") -> dict[str, str]:
    """A copy of ``labels`` once every key and value follows the rules; ConfigError whose
    parameter is ``where.KEY`` for the offending key otherwise."""
    if not isinstance(labels, Mapping):
        raise ConfigError(where, "a mapping of label keys to values", type(labels).__name__)
    if len(labels) > MAX_LABELS:
        raise ConfigError(where, f"at most {MAX_LABELS} labels", len(labels))
    out: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not valid_key(key):
            raise ConfigError(f"{where}.{key}", f"a label key ({KEY_RULE})", key)
        if not isinstance(value, str) or not valid_value(value):
            raise ConfigError(f"{where}.{key}", f"a label value ({VALUE_RULE})", value)
        out[key] = value
    return out
