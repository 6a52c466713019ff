"""Per-tier flags the router's owner sets (thermal offload, health) that the policy reads.

A :class:`TierFlags` is a plain mapping of tier name to bool with a default for tiers not
in it; every change calls ``on_change``, so the router knows when the routes it computed
from the old flags are stale without comparing them on every request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping

__all__ = ["TierFlags"]


class TierFlags(MutableMapping[str, bool]):
    """Tier name -> flag; :meth:`flag` gives ``default`` for tiers never set."""

    __slots__ = ("_default", "_flags", "_on_change")

    def __init__(self, *, default: bool, on_change: Callable[[], None]) -> None:
        self._flags: dict[str, bool] = {}
        self._default = default
        self._on_change = on_change

    def flag(self, tier: str) -> bool:
        return self._flags.get(tier, self._default)

    def __getitem__(self, tier: str) -> bool:
        return self._flags[tier]

    def __setitem__(self, tier: str, value: bool) -> None:
        value = bool(value)
        changed = self.flag(tier) is not value
        self._flags[tier] = value
        if changed:
            self._on_change()

    def __delitem__(self, tier: str) -> None:
        changed = self._flags.pop(tier) is not self._default
        if changed:
            self._on_change()

    def __iter__(self) -> Iterator[str]:
        return iter(self._flags)

    def __len__(self) -> int:
        return len(self._flags)

    def __repr__(self) -> str:
        return f"TierFlags({self._flags!r}, default={self._default})"
