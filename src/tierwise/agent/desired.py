"""The desired state: which reference of each bundle a node should run.

One document, in the desired-state file and in a control plane's answers, JSON or YAML:

- ``{ref: REF}``: the one-bundle form (``version:`` is read as ``ref:``); on a node that
  syncs several bundles it names REF for every one of them (a release versioned together);
- ``{refs: {BUNDLE: REF, ...}}``: a reference per bundle, so a detector and a classifier
  move, and roll back, on their own; with ``ref`` beside it, ``ref`` applies to the bundles
  ``refs`` leaves out. A bundle the document names no reference for is not synced: it
  keeps serving what it serves.

A REF is a version or tag (an OCI tag) or a ``sha256:`` digest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from tierwise.errors import ConfigError
from tierwise.yaml_limits import load_yaml

__all__ = ["REFERENCE", "DesiredState", "check_reference", "parse_desired"]

#: What a desired state may name: a version or tag (an OCI tag), or a sha256 digest.
REFERENCE = re.compile(r"^(?:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}|sha256:[0-9a-f]{64})$")
_BUNDLE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_EXPECTED = "YAML or JSON {ref: VERSION | TAG | sha256:...} or {refs: {BUNDLE: REF, ...}}"


def check_reference(value: object, where: str) -> str:
    """``value`` as a reference; ConfigError naming ``where`` when it is not one."""
    if value is None or isinstance(value, bool | dict | list):
        raise ConfigError(where, "a version, tag or sha256 digest", value)
    text = str(value).strip()
    if not REFERENCE.match(text):
        raise ConfigError(where, "a version, tag or sha256 digest", value)
    return text


@dataclass(frozen=True)
class DesiredState:
    """``refs`` maps a bundle to the reference it should run; ``ref`` is the reference of
    every bundle ``refs`` does not name (None: those are not synced)."""

    ref: str | None = None
    refs: Mapping[str, str] = field(default_factory=dict)

    def reference(self, bundle: str) -> str | None:
        """The reference ``bundle`` should run, or None when the state names none."""
        return self.refs.get(bundle, self.ref)

    def check(self, bundles: Sequence[str], where: str) -> DesiredState:
        """Itself, when every bundle ``refs`` names is one of ``bundles`` (a typo would
        otherwise leave a bundle unsynced without a word)."""
        unknown = sorted(set(self.refs) - set(bundles))
        if unknown:
            raise ConfigError(
                f"{where}: refs", f"bundles this node syncs ({', '.join(bundles)})", unknown[0]
            )
        return self

    def with_refs(self, refs: Mapping[str, str]) -> DesiredState:
        """This state with ``refs`` (bundle -> reference) set and the rest kept."""
        return DesiredState(self.ref, {**self.refs, **refs})

    def to_doc(self) -> dict[str, Any]:
        """The document form, written to the desired-state file (``{ref: REF}`` when it
        names one reference for every bundle, as a one-bundle node always has)."""
        doc: dict[str, Any] = {}
        if self.ref is not None:
            doc["ref"] = self.ref
        if self.refs:
            doc["refs"] = dict(sorted(self.refs.items()))
        return doc


def parse_desired(text: str | bytes, where: str) -> DesiredState:
    """The desired state a document names; ConfigError naming ``where`` and the field.
    Other keys are ignored (a control plane may say more than the node reads)."""
    try:
        data = load_yaml(text, where)
    except ConfigError:
        raise
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(where, _EXPECTED) from exc
    if not isinstance(data, dict):
        raise ConfigError(where, _EXPECTED, type(data).__name__)
    single = data.get("ref", data.get("version"))
    ref = None if single is None and "refs" in data else check_reference(single, f"{where}: ref")
    raw = data.get("refs") or {}
    if not isinstance(raw, dict) or ("refs" in data and not raw):
        raise ConfigError(f"{where}: refs", "a mapping {BUNDLE: REF, ...}", raw)
    refs: dict[str, str] = {}
    for bundle, value in raw.items():
        if not isinstance(bundle, str) or not _BUNDLE.match(bundle):
            raise ConfigError(f"{where}: refs", "bundle names as keys", bundle)
        refs[bundle] = check_reference(value, f"{where}: refs.{bundle}")
    return DesiredState(ref, refs)
