"""The desired versions every node should run, kept in memory beside the store so that a
heartbeat's answer and the agents' ``GET .../desired`` cost a dict lookup.

Every write goes to the store first (one transaction with the decision that made it) and
then here; a replica that shares a PostgreSQL store with others reloads the whole book
at each step of its rollouts, so it also sees the others' writes.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping

import orjson

__all__ = ["DesiredBook"]


class DesiredBook:
    """node -> bundle -> reference, with a stable ETag per node."""

    def __init__(self, initial: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self._lock = threading.Lock()
        self._refs: dict[str, dict[str, str]] = {}
        self.replace(initial or {})

    def replace(self, everything: Mapping[str, Mapping[str, str]]) -> None:
        with self._lock:
            self._refs = {node: dict(refs) for node, refs in everything.items() if refs}

    def apply(
        self, desired: Iterable[tuple[str, str, str]], cleared: Iterable[tuple[str, str]] = ()
    ) -> None:
        """What a committed change set (``(node, bundle, ref)``) and removed."""
        with self._lock:
            for node, bundle, ref in desired:
                self._refs.setdefault(node, {})[bundle] = ref
            for node, bundle in cleared:
                refs = self._refs.get(node)
                if refs is not None:
                    refs.pop(bundle, None)
                    if not refs:
                        del self._refs[node]

    def forget(self, node: str) -> None:
        """Drop every desired version of ``node`` (the store dropped them)."""
        with self._lock:
            self._refs.pop(node, None)

    def of(self, node: str) -> dict[str, str]:
        with self._lock:
            return dict(self._refs.get(node, {}))

    def document(self, node: str) -> dict[str, object] | None:
        """The desired-state document of ``node`` (``{refs: {...}}``), None without one."""
        refs = self.of(node)
        return {"refs": dict(sorted(refs.items()))} if refs else None

    @staticmethod
    def etag(document: Mapping[str, object]) -> str:
        digest = hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return f'"{digest[:32]}"'
