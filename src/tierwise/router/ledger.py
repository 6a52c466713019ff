"""Money spent per workload in its current budget period (what the policy's budget rule
reads)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from tierwise.errors import ConfigError

__all__ = ["SpendLedger", "SpentAt"]


class SpendLedger:
    """Money spent per workload in its current budget period (periods aligned to the
    epoch, so a daily budget resets at midnight UTC)."""

    def __init__(
        self, periods_s: Mapping[str, float] | None = None, *, default_period_s: float = 86_400.0
    ) -> None:
        for name, period in {**(periods_s or {}), "default": default_period_s}.items():
            if period <= 0:
                raise ConfigError(f"periods_s.{name}", "> 0", period)
        self._periods = dict(periods_s or {})
        self._default = default_period_s
        # workload -> (period, usd, period start s, period end s)
        self._spent: dict[str, tuple[int, float, float, float]] = {}

    def _period(self, workload: str, now_s: float) -> int:
        return int(now_s // self._periods.get(workload, self._default))

    def spent(self, now_s: float) -> dict[str, float]:
        """Spend per workload in the period that contains ``now_s``."""
        return {
            w: entry[1] for w, entry in self._spent.items() if entry[0] == self._period(w, now_s)
        }

    def spent_usd(self, workload: str, now_s: float) -> float:
        """One workload's spend in the period that contains ``now_s``."""
        usd = self._current(workload, now_s)
        return 0.0 if usd is None else usd

    def _current(self, workload: str, now_s: float) -> float | None:
        entry = self._spent.get(workload)
        if entry is None or entry[0] != self._period(workload, now_s):
            return None
        return entry[1]

    def at(self, now_s: float) -> SpentAt:
        """:meth:`spent` as a view that looks up only the workloads asked for (its
        ``now_s`` may be moved on, so that one view serves every request)."""
        return SpentAt(self, now_s)

    def add(self, workload: str, usd: float, now_s: float) -> None:
        entry = self._spent.get(workload)
        if entry is not None and entry[2] <= now_s < entry[3]:  # the period as last time
            self._spent[workload] = (entry[0], entry[1] + usd, entry[2], entry[3])
            return
        period_s = self._periods.get(workload, self._default)
        period = int(now_s // period_s)
        total = entry[1] if entry is not None and entry[0] == period else 0.0
        start_s = period * period_s
        self._spent[workload] = (period, total + usd, start_s, start_s + period_s)


class SpentAt(Mapping[str, float]):
    """A ledger's spend per workload in the periods that contain ``now_s``."""

    __slots__ = ("_ledger", "now_s")

    def __init__(self, ledger: SpendLedger, now_s: float) -> None:
        self._ledger = ledger
        self.now_s = now_s

    def __getitem__(self, workload: str) -> float:
        usd = self._ledger._current(workload, self.now_s)
        if usd is None:
            raise KeyError(workload)
        return usd

    def __iter__(self) -> Iterator[str]:
        return iter(self._ledger.spent(self.now_s))

    def __len__(self) -> int:
        return len(self._ledger.spent(self.now_s))
