"""What the agent remembers across restarts: for each bundle it syncs, the active
version, the ones kept for rollback, and versions it was told to stay away from; and the
next model repository generation, shared by every bundle so a number is never reused.
One JSON file, replaced atomically, so a crash leaves either the old state or the new one.

The file written before nodes synced several bundles (``active``, ``previous``, ``held``
at the top level) is read as the state of the bundle its versions belong to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tierwise.errors import AgentError
from tierwise.registry.digest import atomic_write_bytes

__all__ = ["Activation", "AgentState", "BundleState"]


@dataclass(frozen=True)
class Activation:
    """One bundle version as this node served it: ``generation`` is the model version
    number the tier server shows for it (a new one at every activation)."""

    version: str
    digest: str
    generation: int
    activated_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BundleState:
    """One bundle on this node: ``active`` serves now; ``previous`` (newest first) are
    kept for instant rollback; ``held`` maps the digest of a version rolled back from (or
    that failed to load) to the desired reference of that moment: it is not activated
    again until the desired state names something else."""

    active: Activation | None = None
    previous: list[Activation] = field(default_factory=list)
    held: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BundleState:
        return cls(
            active=Activation(**raw["active"]) if raw.get("active") else None,
            previous=[Activation(**a) for a in raw.get("previous", [])],
            held={str(k): str(v) for k, v in (raw.get("held") or {}).items()},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "active": self.active.to_dict() if self.active else None,
            "previous": [a.to_dict() for a in self.previous],
            "held": self.held,
        }

    def digests(self) -> list[str]:
        """Every digest the state names, the active one first."""
        found = [self.active.digest] if self.active else []
        return found + [a.digest for a in self.previous] + list(self.held)

    def promote(self, activation: Activation, *, keep: int) -> None:
        """Make ``activation`` active and keep the ``keep - 1`` newest before it (the store
        prunes the versions no longer kept: see :meth:`kept_digests`)."""
        if self.active is not None and self.active.digest != activation.digest:
            self.previous.insert(0, self.active)
        self.previous = [a for a in self.previous if a.digest != activation.digest]
        self.active = activation
        self.previous = self.previous[: max(keep - 1, 0)]

    def release_holds(self, reference: str | None) -> None:
        """Lift the holds placed under another desired reference than ``reference``."""
        self.held = {d: ref for d, ref in self.held.items() if ref == reference}

    def rollback_targets(self) -> list[Activation]:
        """Kept versions a rollback may go to: not held, not the active one."""
        active = self.active.digest if self.active else None
        return [a for a in self.previous if a.digest not in self.held and a.digest != active]

    def kept_digests(self) -> set[str]:
        digests = {a.digest for a in self.previous}
        if self.active is not None:
            digests.add(self.active.digest)
        return digests


@dataclass
class AgentState:
    """The state of every bundle (by name) and the next generation number."""

    path: Path
    bundles: dict[str, BundleState] = field(default_factory=dict)
    next_generation: int = 1

    @classmethod
    def load(cls, path: Path, *, owner: Callable[[str], str | None]) -> AgentState:
        """Read the state file (an empty state when there is none). ``owner`` names the
        bundle a digest belongs to; it places the state of a file written by a one-bundle
        node (None: that state is of no bundle this node syncs, and is dropped)."""
        if not path.is_file():
            return cls(path)
        try:
            raw = orjson.loads(path.read_bytes())
            state = cls(path, next_generation=int(raw.get("next_generation", 1)))
            if "bundles" in raw:
                for name, part in raw["bundles"].items():
                    state.bundles[str(name)] = BundleState.from_dict(part)
            else:  # the one-bundle file
                legacy = BundleState.from_dict(raw)
                digests = legacy.digests()
                name = owner(digests[0]) if digests else None
                if name is not None:
                    state.bundles[name] = legacy
            return state
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise AgentError(f"agent state {path} is unreadable: {exc}") from exc

    def of(self, bundle: str) -> BundleState:
        """The state of ``bundle`` (an empty one, recorded, the first time)."""
        return self.bundles.setdefault(bundle, BundleState())

    def save(self) -> None:
        doc = {
            "bundles": {name: part.to_dict() for name, part in sorted(self.bundles.items())},
            "next_generation": self.next_generation,
        }
        atomic_write_bytes(self.path, orjson.dumps(doc, option=orjson.OPT_INDENT_2))

    def take_generation(self) -> int:
        generation = self.next_generation
        self.next_generation += 1
        return generation
