"""Rollout gates: how the canary cohort compares with the baseline cohort, and the limit.

Each gate reads one statistic of both cohorts (:class:`~tierwise.control.window.
CohortStats`) and compares them as a ratio or a difference against its limit:

- ``p99_ratio``: canary p99 / baseline p99 ``<=`` limit (default 1.5);
- ``error_rate_delta``: canary error rate - baseline error rate ``<=`` limit (0.01);
- ``agreement_delta``: canary agreement with the cloud tier - baseline's ``>=`` limit
  (-0.05): the estimated accuracy may drop by at most 5 points;
- ``energy_ratio``: canary joules per inference / baseline's ``<=`` limit (1.3);
- ``fallback_delta``: canary fallback rate - baseline's ``<=`` limit (0.05).

``p99_ratio`` also passes when the canary's p99 is at most ``p99_slack_s`` above the
baseline's, so two tiny latencies never fail on noise. A gate with no figure on either
side (no requests, too few re-evaluations, no energy accounting) says ``no_data``, never
``fail``; an analysis whose cohorts have fewer than ``min_requests`` requests is
inconclusive: it reports its results but fails no gate.

Gates are written ``NAME=LIMIT`` or with the gate's own operator (``p99_ratio<=1.2``,
``agreement_delta>=-0.1``). In a list given to :func:`gates_from` the defaults apply
unless overridden by name; ``NAME=off`` drops one gate and ``none`` drops every gate
named before it (``none,p99_ratio=2`` keeps only that one).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Any, Literal

from tierwise.control.cohort import CohortStats
from tierwise.errors import ConfigError

__all__ = [
    "GATES",
    "Analysis",
    "Gate",
    "GateResult",
    "GateSpec",
    "Verdict",
    "analyse",
    "default_gates",
    "gates_from",
    "parse_gate",
]

Verdict = Literal["pass", "fail", "no_data"]
#: Comparisons this close to the limit count as on it (float noise in differences).
_EPS = 1e-9


@dataclass(frozen=True)
class GateSpec:
    """One kind of gate: the statistic it reads, ``ratio`` or ``delta``, the operator a
    passing value meets (``<=`` an upper limit, ``>=`` a lower one) and the default."""

    name: str
    statistic: str
    compare: Literal["ratio", "delta"]
    op: Literal["<=", ">="]
    default_limit: float
    label: str

    def limit_problem(self, limit: float) -> str | None:
        """What is wrong with ``limit`` for this gate, or None."""
        if self.compare == "ratio" and limit <= 0:
            return "a ratio above 0"
        if self.compare == "delta" and not -1 <= limit <= 1:
            return "a difference of shares in [-1, 1]"
        return None


GATES: Mapping[str, GateSpec] = MappingProxyType({
    spec.name: spec for spec in (
        GateSpec("p99_ratio", "p99_s", "ratio", "<=", 1.5, "p99"),
        GateSpec("error_rate_delta", "error_rate", "delta", "<=", 0.01, "error rate"),
        GateSpec("agreement_delta", "agreement", "delta", ">=", -0.05, "agreement"),
        GateSpec("energy_ratio", "energy_j_per_inference", "ratio", "<=", 1.3, "energy"),
        GateSpec("fallback_delta", "fallback_rate", "delta", "<=", 0.05, "fallback rate"),
    )
})  # fmt: skip


@dataclass(frozen=True)
class Gate:
    """A gate in force: one of :data:`GATES` and its limit."""

    name: str
    limit: float

    def __post_init__(self) -> None:
        spec = GATES.get(self.name) if isinstance(self.name, str) else None
        if spec is None:
            raise ConfigError("gate", f"one of {', '.join(GATES)}", self.name)
        limit = self.limit
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int | float)
            or not math.isfinite(limit)
        ):
            raise ConfigError(f"gate {self.name}", "a finite number as the limit", limit)
        problem = spec.limit_problem(limit)
        if problem is not None:
            raise ConfigError(f"gate {self.name}", problem, limit)
        object.__setattr__(self, "limit", float(limit))

    @property
    def spec(self) -> GateSpec:
        return GATES[self.name]

    def __str__(self) -> str:
        return f"{self.name}{self.spec.op}{self.limit:g}"


_GATE_TEXT = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(<=|>=|=)\s*(\S+)\s*$")


def _split(text: str) -> tuple[GateSpec, str, str]:
    if not isinstance(text, str):
        raise ConfigError("gate", "NAME=LIMIT, NAME<=LIMIT or NAME>=LIMIT", text)
    found = _GATE_TEXT.match(text)
    if found is None:
        raise ConfigError("gate", "NAME=LIMIT, NAME<=LIMIT or NAME>=LIMIT", text)
    name, op, value = found.groups()
    spec = GATES.get(name)
    if spec is None:
        raise ConfigError("gate", f"one of {', '.join(GATES)}", name)
    if op not in ("=", spec.op):
        bound = "an upper" if spec.op == "<=" else "a lower"
        expected = f"{name}=LIMIT or {name}{spec.op}LIMIT ({name} sets {bound} limit)"
        raise ConfigError("gate", expected, text)
    return spec, op, value


def parse_gate(text: str) -> Gate:
    """The gate ``text`` names: ``p99_ratio=1.2``, ``p99_ratio<=1.2``,
    ``agreement_delta>=-0.1``. ConfigError for an unknown gate (listing the known
    ones), an operator against the gate's direction, or a limit that is not a finite
    number in the gate's range."""
    spec, _, value = _split(text)
    try:
        limit = float(value)
    except ValueError:
        raise ConfigError(f"gate {spec.name}", "a number as the limit", value) from None
    return Gate(spec.name, limit)


def default_gates() -> list[Gate]:
    """Every gate at its default limit."""
    return [Gate(spec.name, spec.default_limit) for spec in GATES.values()]


def gates_from(texts: Sequence[str]) -> list[Gate]:
    """The defaults, changed by ``texts`` in order: ``NAME=LIMIT`` (or with its operator)
    sets a limit, ``NAME=off`` drops that gate, ``none`` drops every gate so far."""
    if isinstance(texts, str):
        raise ConfigError("gates", "a list of gates such as ['p99_ratio=1.2']", texts)
    chosen = {gate.name: gate for gate in default_gates()}
    for text in texts:
        if isinstance(text, str) and text.strip().lower() == "none":
            chosen.clear()
            continue
        spec, op, value = _split(text)
        if value.lower() == "off":
            if op != "=":
                raise ConfigError("gate", f"{spec.name}=off", text)
            chosen.pop(spec.name, None)
        else:
            chosen[spec.name] = parse_gate(text)
    return [chosen[name] for name in GATES if name in chosen]


def _shown(spec: GateSpec, value: float | None) -> str:
    if value is None:
        return "-"
    if spec.statistic == "p99_s":
        ms = value * 1000
        return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.3g} ms"
    if spec.statistic == "energy_j_per_inference":
        return f"{value:.3g} J/inference"
    return f"{value * 100:.3g}%"


@dataclass(frozen=True)
class GateResult:
    """One gate's outcome: the compared ``value`` (ratio or difference, None without
    data), the cohorts' own figures, and ``note`` when a rule other than the limit
    decided (the p99 slack)."""

    gate: str
    limit: float
    verdict: Verdict
    value: float | None
    canary: float | None
    baseline: float | None
    note: str | None = None

    def text(self) -> str:
        """One line for people: ``p99_ratio 2.31 > 1.5 (canary p99 41.2 ms, baseline
        17.8 ms)``."""
        spec = GATES[self.gate]
        figures = (
            f"canary {spec.label} {_shown(spec, self.canary)}, "
            f"baseline {_shown(spec, self.baseline)}"
        )
        if self.value is None:
            return f"{self.gate}: no data ({figures})"
        within = (self.value <= self.limit + _EPS) if spec.op == "<=" else (
            self.value >= self.limit - _EPS)  # fmt: skip
        op = spec.op if within else {"<=": ">", ">=": "<"}[spec.op]
        note = f" but {self.note}" if self.note else ""
        return f"{self.gate} {self.value:.3g} {op} {self.limit:g}{note} ({figures})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"text": self.text()}


def _judge(gate: Gate, canary: CohortStats, baseline: CohortStats, slack_s: float) -> GateResult:
    spec = gate.spec
    mine, theirs = getattr(canary, spec.statistic), getattr(baseline, spec.statistic)

    def result(verdict: Verdict, value: float | None, note: str | None = None) -> GateResult:
        return GateResult(gate.name, gate.limit, verdict, value, mine, theirs, note)

    if mine is None or theirs is None or (spec.compare == "ratio" and theirs <= 0):
        return result("no_data", None)
    value = mine / theirs if spec.compare == "ratio" else mine - theirs
    if spec.op == "<=" and value <= gate.limit + _EPS:
        return result("pass", value)
    if spec.op == ">=" and value >= gate.limit - _EPS:
        return result("pass", value)
    if gate.name == "p99_ratio" and mine - theirs <= slack_s + _EPS:
        return result("pass", value, f"within the {slack_s * 1000:g} ms slack")
    return result("fail", value)


@dataclass(frozen=True)
class Analysis:
    """One analysis of a rollout: each gate's result and the two cohorts' figures.
    ``conclusive`` when both cohorts had at least ``min_requests`` requests; ``failed``
    names the failing gates of a conclusive analysis (none otherwise)."""

    results: tuple[GateResult, ...]
    canary: CohortStats
    baseline: CohortStats
    min_requests: int

    @property
    def conclusive(self) -> bool:
        return min(self.canary.requests, self.baseline.requests) >= self.min_requests

    @property
    def failed(self) -> list[str]:
        if not self.conclusive:
            return []
        return [r.gate for r in self.results if r.verdict == "fail"]

    @property
    def verdict(self) -> Literal["pass", "fail", "inconclusive"]:
        if not self.conclusive:
            return "inconclusive"
        return "fail" if self.failed else "pass"

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict, "conclusive": self.conclusive, "failed": self.failed,
            "min_requests": self.min_requests, "results": [r.to_dict() for r in self.results],
            "canary": self.canary.to_dict(), "baseline": self.baseline.to_dict(),
        }  # fmt: skip


def analyse(
    canary: CohortStats,
    baseline: CohortStats,
    gates: Sequence[Gate],
    *,
    min_requests: int = 20,
    p99_slack_s: float = 0.002,
) -> Analysis:
    """Judge every gate of ``gates`` on the canary cohort against the baseline cohort."""
    if isinstance(min_requests, bool) or not isinstance(min_requests, int) or min_requests < 1:
        raise ConfigError("min_requests", "a whole number >= 1", min_requests)
    if (isinstance(p99_slack_s, bool) or not isinstance(p99_slack_s, int | float)
            or not math.isfinite(p99_slack_s) or p99_slack_s < 0):  # fmt: skip
        raise ConfigError("p99_slack_s", "seconds >= 0", p99_slack_s)
    for gate in gates:
        if not isinstance(gate, Gate):
            raise ConfigError("gates", "Gate objects (see parse_gate)", gate)
    results = tuple(_judge(g, canary, baseline, float(p99_slack_s)) for g in gates)
    return Analysis(results, canary, baseline, min_requests)
