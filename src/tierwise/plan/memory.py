"""Memory on each tier: every variant placed there is resident on each of its nodes.

A placement's stage loads one variant of one model on a tier; all the workloads placed
on a tier share its nodes, so the variants they use must fit together in one node's
memory (a cloud instance's, for a pool). A variant used by several workloads is loaded
once. A variant's footprint is the larger of its file size and its measured peak memory
(:class:`~tierwise.plan.options.Stage.memory_mib`). Tiers without a memory figure
(``memory_mib`` 0) are not bounded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tierwise.plan.options import Option
from tierwise.plan.problem import TierModel

__all__ = [
    "MemoryUse",
    "Resident",
    "add_stages",
    "memory_use",
    "resident_variants",
    "tier_memory",
]

#: (model, variant) -> footprint in MiB
Resident = dict[tuple[str, str], float]


@dataclass(frozen=True)
class MemoryUse:
    """What a tier must hold: its resident variants and their sum, against one node."""

    tier: str
    resident: Resident
    needed_mib: float
    room_mib: float  # 0: not bounded

    @property
    def fits(self) -> bool:
        return self.room_mib <= 0 or self.needed_mib <= self.room_mib * (1 + 1e-9)

    def label(self) -> str:
        return ", ".join(
            f"{m}/{v} ({mib:.3g} MiB)" for (m, v), mib in sorted(self.resident.items())
        )


def add_stages(resident: dict[str, Resident], option: Option) -> None:
    """Load the variants of ``option``'s stages into ``resident`` (per tier)."""
    for stage in option.stages:
        held = resident.setdefault(stage.tier, {})
        key = (stage.model, stage.variant)
        held[key] = max(held.get(key, 0.0), stage.memory_mib)


def resident_variants(options: Iterable[Option]) -> dict[str, Resident]:
    """Per tier, the variants ``options`` load there and their footprints."""
    out: dict[str, Resident] = {}
    for option in options:
        add_stages(out, option)
    return out


def tier_memory(tier: str, resident: Resident, models: dict[str, TierModel]) -> MemoryUse:
    """What ``tier`` must hold with ``resident`` loaded, against one of its nodes."""
    return MemoryUse(tier, resident, sum(resident.values()), models[tier].memory_mib)


def memory_use(options: Iterable[Option], models: dict[str, TierModel]) -> dict[str, MemoryUse]:
    """Per tier that ``options`` use: what it must hold against one node's memory."""
    return {
        tier: tier_memory(tier, resident, models)
        for tier, resident in resident_variants(options).items()
    }
