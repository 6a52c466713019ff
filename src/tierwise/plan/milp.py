"""The placement as a mixed-integer program, solved by HiGHS (``scipy.optimize.milp``).

Variables (all integer):

- ``x[w, o]`` in {0, 1}: workload *w* takes placement *o* (:mod:`tierwise.plan.options`);
- ``y[t]`` in {0, 1}: edge or device tier *t* carries work (its monthly cost is paid);
- ``n[t, p]`` in 0..max instances: cloud tier *t* runs that many instances in period *p*.

Minimise ``sum fixed[t] y[t] + sum price[t] hours[p] n[t, p] + sum variable[w, o] x[w, o]``
(USD per month) subject to

- one placement per workload: ``sum_o x[w, o] = 1``;
- capacity of each edge or device tier in each period:
  ``sum usage[w, o, t, p] x[w, o] <= replicas[t] y[t]``;
- capacity of each cloud pool in each period:
  ``sum usage[w, o, t, p] x[w, o] <= replicas per instance[t] n[t, p]``;
- a tier carries a workload only when it is paid for: ``sum_{o on t} x[w, o] <= y[t]``
  (redundant with capacity, but it makes the relaxation tight, so HiGHS proves optimality
  quickly on thousands of workloads);
- memory, on a tier whose candidate variants would not all fit one node together
  (:mod:`tierwise.plan.memory`): ``z[t, v]`` in {0, 1} says variant *v* is loaded there,
  ``sum_{o of w loading v on t} x[w, o] <= z[t, v]`` and ``sum_v mib[v] z[t, v] <=
  memory[t]``. Other tiers get no such variables.

SLOs, privacy and residency, memory, accuracy and budgets were applied when the
placements were made, so every ``x`` is one the workload may take. The matrices are
built as ``scipy.sparse`` arrays: the program has one column per placement and one row
per workload, per tier and period, and per workload-tier pair.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from tierwise.errors import PlanError
from tierwise.plan.memory import Resident, memory_use, resident_variants, tier_memory
from tierwise.plan.options import WorkloadOptions
from tierwise.plan.problem import TierModel, hours_per_month
from tierwise.plan.settings import PlanSettings

__all__ = ["MilpSolution", "Overload", "find_overload", "solve_milp"]


@dataclass(frozen=True)
class MilpSolution:
    """The chosen option of each workload, the program's size and how the solve went."""

    choice: tuple[int, ...]
    objective_usd_per_month: float
    status: str  # "optimal" (within mip_rel_gap) or "time_limit"
    mip_gap: float
    solve_s: float
    variables: int
    constraints: int
    nonzeros: int


@dataclass(frozen=True)
class Overload:
    """A tier that cannot carry what the workloads that must use it need: busy replicas
    in ``period`` (``resource`` "traffic"), or one node's memory ("memory", in MiB, with
    the variants it would hold in ``resident``)."""

    tier: str
    period: int
    needed_replicas: float
    capacity_replicas: float
    workload: str
    resource: str = "traffic"
    resident: str = ""


class _Builder:
    def __init__(
        self,
        workloads: Sequence[WorkloadOptions],
        models: dict[str, TierModel],
        periods: tuple[float, ...],
    ) -> None:
        self.periods = periods
        self.models = models
        self.x_start: list[int] = []
        cost: list[float] = []
        for w in workloads:
            self.x_start.append(len(cost))
            cost.extend(o.variable_usd_per_month for o in w.options)
        self.n_x = len(cost)
        used = sorted({t for w in workloads for o in w.options for t in o.usage})
        self.fixed_tiers = [t for t in used if not models[t].cloud]
        self.cloud_tiers = [t for t in used if models[t].cloud]
        self.y = {t: self.n_x + i for i, t in enumerate(self.fixed_tiers)}
        cost.extend(models[t].fixed_usd_per_month for t in self.fixed_tiers)
        base = len(cost)
        self.n: dict[tuple[str, int], int] = {}
        for t in self.cloud_tiers:
            for p, hours in enumerate(periods):
                self.n[(t, p)] = len(cost)
                cost.append(models[t].instance_usd_per_hour * hours_per_month(hours))
        self.n_base = base
        # memory: only tiers where the variants that could land there might not all fit
        candidates = resident_variants(o for w in workloads for o in w.options)
        self.tight: dict[str, Resident] = {
            t: resident
            for t, resident in sorted(candidates.items())
            if not tier_memory(t, resident, models).fits
        }
        self.z: dict[tuple[str, tuple[str, str]], int] = {}
        for t, resident in self.tight.items():
            for key in sorted(resident):
                self.z[(t, key)] = len(cost)
                cost.append(0.0)
        self.cost = np.asarray(cost, dtype=np.float64)
        self.rows: list[int] = []
        self.cols: list[int] = []
        self.vals: list[float] = []
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.capacity_rows: dict[int, tuple[str, int]] = {}
        self.memory_rows: dict[int, str] = {}
        self._build(workloads)

    def _row(self, lb: float, ub: float) -> int:
        self.lb.append(lb)
        self.ub.append(ub)
        return len(self.lb) - 1

    def _add(self, row: int, col: int, value: float) -> None:
        self.rows.append(row)
        self.cols.append(col)
        self.vals.append(value)

    def _build(self, workloads: Sequence[WorkloadOptions]) -> None:
        for i, w in enumerate(workloads):
            row = self._row(1.0, 1.0)
            for j in range(len(w.options)):
                self._add(row, self.x_start[i] + j, 1.0)
        capacity: dict[tuple[str, int], int] = {}
        for t in (*self.fixed_tiers, *self.cloud_tiers):
            model = self.models[t]
            for p in range(len(self.periods)):
                row = self._row(-np.inf, 0.0)
                capacity[(t, p)] = row
                self.capacity_rows[row] = (t, p)
                column = self.y[t] if not model.cloud else self.n[(t, p)]
                self._add(row, column, -model.capacity_replicas)
        for i, w in enumerate(workloads):
            links: dict[str, list[int]] = {}
            for j, option in enumerate(w.options):
                col = self.x_start[i] + j
                for t, usage in option.usage.items():
                    for p, value in enumerate(usage):
                        if value > 0:
                            self._add(capacity[(t, p)], col, value)
                    if not self.models[t].cloud:
                        links.setdefault(t, []).append(col)
            for t, cols in links.items():
                row = self._row(-np.inf, 0.0)
                for col in cols:
                    self._add(row, col, 1.0)
                self._add(row, self.y[t], -1.0)
        if self.tight:
            self._build_memory(workloads)

    def _build_memory(self, workloads: Sequence[WorkloadOptions]) -> None:
        for i, w in enumerate(workloads):
            loads: dict[tuple[str, tuple[str, str]], set[int]] = {}
            for j, option in enumerate(w.options):
                for stage in option.stages:
                    if stage.tier in self.tight:
                        key = (stage.tier, (stage.model, stage.variant))
                        loads.setdefault(key, set()).add(self.x_start[i] + j)
            for key, cols in loads.items():
                row = self._row(-np.inf, 0.0)
                for col in sorted(cols):
                    self._add(row, col, 1.0)
                self._add(row, self.z[key], -1.0)
        for t, resident in self.tight.items():
            row = self._row(-np.inf, self.models[t].memory_mib)
            self.memory_rows[row] = t
            for variant, mib in resident.items():
                self._add(row, self.z[(t, variant)], mib)

    def bounds(self) -> Bounds:
        upper = np.ones(self.cost.shape[0])
        for (t, _), col in self.n.items():
            upper[col] = self.models[t].max_instances
        return Bounds(np.zeros_like(upper), upper)

    def matrix(self, extra_cols: int = 0) -> sparse.csr_array:
        shape = (len(self.lb), self.cost.shape[0] + extra_cols)
        return sparse.coo_array(
            (np.asarray(self.vals), (np.asarray(self.rows), np.asarray(self.cols))), shape=shape
        ).tocsr()


def _choice(
    x: np.ndarray, builder: _Builder, workloads: Sequence[WorkloadOptions]
) -> tuple[int, ...]:
    out = []
    for i, w in enumerate(workloads):
        start = builder.x_start[i]
        out.append(int(np.argmax(x[start : start + len(w.options)])))
    return tuple(out)


def solve_milp(
    workloads: Sequence[WorkloadOptions],
    models: dict[str, TierModel],
    periods: tuple[float, ...],
    settings: PlanSettings,
) -> MilpSolution | None:
    """Solve the program; None when it is infeasible (see :func:`find_overload`)."""
    if any(not w.options for w in workloads):
        raise PlanError("workloads", "at least one feasible placement for every workload")
    builder = _Builder(workloads, models, periods)
    matrix = builder.matrix()
    started = time.perf_counter()
    result = milp(
        builder.cost,
        integrality=np.ones_like(builder.cost),
        bounds=builder.bounds(),
        constraints=LinearConstraint(matrix, np.asarray(builder.lb), np.asarray(builder.ub)),
        options={
            "time_limit": settings.time_limit_s,
            "mip_rel_gap": settings.mip_rel_gap,
            "disp": False,
        },
    )
    solve_s = time.perf_counter() - started
    if result.x is None:
        if result.status == 2:
            return None
        raise PlanError(
            "settings.time_limit_s", "enough time to find a first plan", f"HiGHS: {result.message}"
        )
    status = "optimal" if result.status == 0 else "time_limit"
    gap = float(getattr(result, "mip_gap", 0.0) or 0.0)
    return MilpSolution(
        choice=_choice(result.x, builder, workloads),
        objective_usd_per_month=float(result.fun),
        status=status,
        mip_gap=gap,
        solve_s=solve_s,
        variables=int(builder.cost.shape[0]),
        constraints=len(builder.lb),
        nonzeros=int(matrix.nnz),
    )


def find_overload(
    workloads: Sequence[WorkloadOptions],
    models: dict[str, TierModel],
    periods: tuple[float, ...],
    settings: PlanSettings,
) -> Overload:
    """Why the program is infeasible: solve it with paid overflow on every capacity row and
    name the tier (and period) that overflows most, and the workload using it most."""
    builder = _Builder(workloads, models, periods)
    rows = sorted(builder.capacity_rows) + sorted(builder.memory_rows)
    extra = len(rows)
    matrix = sparse.hstack(
        [builder.matrix(), sparse.coo_array((-np.ones(extra), (rows, np.arange(extra))),
                                            shape=(len(builder.lb), extra))]
    ).tocsr()  # fmt: skip
    penalty = 1e3 * (float(builder.cost.max(initial=0.0)) + 1.0)
    # overflowing a node's whole memory weighs as much as overflowing one busy replica
    weights = [1.0 if r in builder.capacity_rows else 1.0 / _room(builder, r) for r in rows]
    cost = np.concatenate([builder.cost, penalty * np.asarray(weights)])
    bounds = builder.bounds()
    result = milp(
        cost,
        integrality=np.concatenate([np.ones_like(builder.cost), np.zeros(extra)]),
        bounds=Bounds(
            np.concatenate([bounds.lb, np.zeros(extra)]),
            np.concatenate([bounds.ub, np.full(extra, np.inf)]),
        ),
        constraints=LinearConstraint(matrix, np.asarray(builder.lb), np.asarray(builder.ub)),
        options={"time_limit": settings.time_limit_s, "disp": False},
    )
    if result.x is None:
        raise PlanError("workloads", "a plan that fits the tiers", f"HiGHS: {result.message}")
    overflow = result.x[builder.cost.shape[0] :]
    k = int(np.argmax(overflow / np.maximum([_room(builder, r) for r in rows], 1e-12)))
    choice = _choice(result.x, builder, workloads)
    if rows[k] in builder.memory_rows:
        return _memory_overload(builder.memory_rows[rows[k]], workloads, choice, models)
    tier, period = builder.capacity_rows[rows[k]]
    load = [
        (w.options[j].usage.get(tier, (0.0,) * len(periods))[period], w.workload)
        for w, j in zip(workloads, choice, strict=True)
    ]
    needed = sum(u for u, _ in load)
    return Overload(tier, period, needed, _room(builder, rows[k]), max(load)[1])


def _memory_overload(
    tier: str,
    workloads: Sequence[WorkloadOptions],
    choice: Sequence[int],
    models: dict[str, TierModel],
) -> Overload:
    chosen = [w.options[j] for w, j in zip(workloads, choice, strict=True)]
    use = memory_use(chosen, models)[tier]
    heaviest = max(
        (stage.memory_mib, option.workload)
        for option in chosen
        for stage in option.stages
        if stage.tier == tier
    )
    return Overload(
        tier, 0, use.needed_mib, use.room_mib, heaviest[1], resource="memory",
        resident=use.label(),
    )  # fmt: skip


def _room(builder: _Builder, row: int) -> float:
    if row in builder.memory_rows:
        return builder.models[builder.memory_rows[row]].memory_mib
    tier, _ = builder.capacity_rows[row]
    model = builder.models[tier]
    return model.capacity_replicas * (model.max_instances if model.cloud else 1)
