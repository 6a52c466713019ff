"""Drift monitors: does what a tier sees still look like what its model was checked on?

A :class:`Reference` (:mod:`tierwise.telemetry.drift_reference`) summarises a model's
evaluation data (``reference.json`` beside the model). A :class:`DriftMonitor` keeps the
last ``window_rows`` rows a tier served and, every ``step_rows`` rows, compares them with
the reference:

==========  ====  ==============================================================
signal      test  compares
==========  ====  ==============================================================
confidence  psi   confidence histogram (reference bins merged to equal mass)
confidence  ks    confidence values
class       psi   predicted-class frequencies
input_mean  ks    per-row means of the input
input_std   ks    per-row standard deviations of the input
==========  ====  ==============================================================

A PSI score is compared with ``psi_warn`` / ``psi_alert`` (Evidently's 0.1 / 0.2). A KS
score is the two-sample statistic D (0: same distribution, 1: disjoint); its asymptotic
p-value is compared with ``ks_warn`` / ``ks_alert`` divided by the number of KS tests
(Bonferroni), so those two settings bound the chance that a window of unshifted traffic
warns or alerts through any KS test. A window's level is 2 (alert) when any test passes
its alert threshold, else 1 (warn) when any passes its warn threshold, else 0.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping

import numpy as np
from pydantic import Field, model_validator

from tierwise.errors import ConfigError
from tierwise.escalation.rules import MaxProbability
from tierwise.settings_errors import SettingsModel
from tierwise.telemetry.drift_reference import (
    CONFIDENCE_BINS,
    REFERENCE_FILE,
    Reference,
    class_scores,
    reference_from_outputs,
    row_summary,
)

__all__ = [
    "CONFIDENCE_BINS",
    "REFERENCE_FILE",
    "DriftMonitor",
    "DriftSettings",
    "Reference",
    "ks_pvalue",
    "ks_statistic",
    "psi",
    "reference_from_outputs",
]

_PSI_EPSILON = 1e-4  # share given to an empty bin, as Evidently does


class DriftSettings(SettingsModel):
    """How a :class:`DriftMonitor` windows traffic and when it warns or alerts.

    ``min_rows`` (default ``window_rows``): rows needed before the first comparison;
    ``step_rows`` (default a fifth of the window): rows between comparisons; ``bins``: PSI
    bins of the confidence (reference bins merged to about equal reference mass).
    ``ks_warn`` / ``ks_alert`` are p-values for all KS tests together (see module docs).
    """

    window_rows: int = Field(default=250, ge=20, le=1_000_000)
    step_rows: int | None = Field(default=None, ge=1)
    min_rows: int | None = Field(default=None, ge=20)
    psi_warn: float = Field(default=0.1, gt=0.0)
    psi_alert: float = Field(default=0.2, gt=0.0)
    ks_warn: float = Field(default=0.05, gt=0.0, lt=1.0)
    ks_alert: float = Field(default=0.001, gt=0.0, lt=1.0)
    bins: int = Field(default=10, ge=2, le=CONFIDENCE_BINS)

    @model_validator(mode="after")
    def _consistent(self) -> DriftSettings:
        if self.psi_alert < self.psi_warn:
            raise ConfigError("psi_alert", f">= psi_warn ({self.psi_warn})", self.psi_alert)
        if self.ks_alert > self.ks_warn:
            raise ConfigError("ks_alert", f"<= ks_warn ({self.ks_warn})", self.ks_alert)
        for name in ("step_rows", "min_rows"):
            value = getattr(self, name)
            if value is not None and value > self.window_rows:
                raise ConfigError(name, f"<= window_rows ({self.window_rows})", value)
        return self


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two histograms over the same bins (counts or shares):
    ``sum((a - e) * ln(a / e))`` on shares, an empty bin counting as a share of 1e-4."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.ndim != 1 or e.size == 0:
        raise ConfigError("actual", f"a histogram with {e.size} bins like expected", a.shape)
    if not (e.sum() > 0 and a.sum() > 0) or (e < 0).any() or (a < 0).any():
        raise ConfigError("histograms", "non-negative counts with a positive total")
    e = np.maximum(e / e.sum(), _PSI_EPSILON)
    a = np.maximum(a / a.sum(), _PSI_EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def _ks_sorted(first: np.ndarray, second: np.ndarray) -> float:
    points = np.concatenate([first, second])
    cdf1 = np.searchsorted(first, points, side="right") / first.size
    cdf2 = np.searchsorted(second, points, side="right") / second.size
    return float(np.max(np.abs(cdf1 - cdf2)))


def ks_statistic(first: np.ndarray, second: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical
    distribution functions (ties handled as scipy's ``ks_2samp`` does)."""
    a = np.sort(np.asarray(first, dtype=np.float64).ravel())
    b = np.sort(np.asarray(second, dtype=np.float64).ravel())
    if a.size == 0 or b.size == 0:
        raise ConfigError("samples", "two non-empty samples", (a.size, b.size))
    return _ks_sorted(a, b)


def ks_pvalue(statistic: float, n: int, m: int) -> float:
    """Asymptotic p-value of a two-sample KS statistic for samples of ``n`` and ``m``
    values (Kolmogorov's distribution with Stephens' small-sample correction)."""
    ne = n * m / (n + m)
    lam = (math.sqrt(ne) + 0.12 + 0.11 / math.sqrt(ne)) * statistic
    if lam <= 0.0:
        return 1.0
    if lam < 1.18:  # the series that converges fast for small lambda gives P(K <= lam)
        terms = sum(math.exp(-((2 * k - 1) ** 2) * math.pi**2 / (8 * lam**2)) for k in (1, 2, 3))
        return min(1.0, max(0.0, 1.0 - math.sqrt(2 * math.pi) / lam * terms))
    terms = sum((1 if k % 2 else -1) * math.exp(-2 * k * k * lam * lam) for k in (1, 2, 3, 4))
    return min(1.0, max(0.0, 2.0 * terms))


def _equal_mass_groups(histogram: np.ndarray, bins: int) -> np.ndarray:
    """For each fine bin, the group it joins: adjacent bins merged to about equal mass."""
    cdf = np.cumsum(histogram) / histogram.sum()
    cuts = np.unique(np.searchsorted(cdf, np.arange(1, bins) / bins, side="left") + 1)
    cuts = cuts[(cuts > 0) & (cuts < histogram.size)]
    return np.searchsorted(cuts, np.arange(histogram.size), side="right")


class DriftMonitor:
    """Compares a sliding window of served rows with a :class:`Reference` (module docs).

    :meth:`observe` takes each batch the model ran; ``windows`` counts comparisons made,
    ``alerts`` and ``warnings`` those that alerted or warned, ``ignored_batches`` the
    batches that lacked the reference's tensors or did not fit them, ``errors`` the
    batches that failed on their way to it (the server's hook counts them and goes on).

    A batch costs a few vectorised numpy passes over it (row summaries, top class); the
    comparison, a sort of the window and a search in each reference sample, runs only
    every ``step_rows`` rows. One lock orders :meth:`observe` (the server's event loop)
    with the readers (a metrics scrape in another thread).
    """

    def __init__(self, reference: Reference, settings: DriftSettings | None = None) -> None:
        if not isinstance(reference, Reference):
            raise ConfigError("reference", "a Reference", type(reference).__name__)
        self.reference = reference
        self.settings = settings or DriftSettings()
        size = self.settings.window_rows
        self._step = self.settings.step_rows or max(1, size // 5)
        self._min = self.settings.min_rows or size
        self._mean_ref = np.asarray(reference.input_mean, dtype=np.float64)
        self._std_ref = np.asarray(reference.input_std, dtype=np.float64)
        self._rule: MaxProbability | None = None
        self._ks = 2
        if reference.output is not None:
            self._rule = MaxProbability(reference.output, reference.score_kind)
            self._ks = 3
            self._conf_ref = np.asarray(reference.confidence, dtype=np.float64)
            self._class_ref = np.asarray(reference.class_counts, dtype=np.float64)
            fine = np.asarray(reference.confidence_histogram, dtype=np.float64)
            self._groups = _equal_mass_groups(fine, self.settings.bins)
            self._group_ref = np.bincount(self._groups, weights=fine)
        self._buffer = np.zeros((4, size), dtype=np.float64)  # mean, std, confidence, class
        self._filled = self._position = self._since = 0
        self._lock = threading.Lock()
        self._scores: dict[tuple[str, str], float] = {}
        self._pvalues: dict[tuple[str, str], float] = {}
        self._level = 0
        self.windows = self.alerts = self.warnings = self.ignored_batches = self.errors = 0

    @property
    def window_rows(self) -> int:
        """Rows in the current window (up to ``settings.window_rows``)."""
        return self._filled

    def scores(self) -> dict[tuple[str, str], float]:
        """``(signal, test) -> score`` of the last comparison (empty before the first)."""
        with self._lock:
            return dict(self._scores)

    def pvalues(self) -> dict[tuple[str, str], float]:
        """``(signal, "ks") -> p-value`` of the last comparison."""
        with self._lock:
            return dict(self._pvalues)

    def level(self) -> int:
        """0 ok, 1 warn, 2 alert: the last comparison's level (0 before the first)."""
        return self._level

    def observe(self, inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> None:
        """Add one batch (tensor name to array, rows first); compare when due."""
        block = self._rows(inputs, outputs)
        if block is None:
            self.ignored_batches += 1
            return
        with self._lock:
            self._append(block)
            if self._filled >= self._min and self._since >= self._step:
                self._since = 0
                self._compare()

    def _rows(
        self, inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]
    ) -> np.ndarray | None:
        found = inputs.get(self.reference.input_name)
        if found is None:
            return None
        summary = row_summary(np.asarray(found))
        if summary is None:
            return None
        rows = summary[0].shape[0]
        block = np.zeros((4, rows), dtype=np.float64)
        block[0], block[1] = summary
        if self._rule is not None:
            scores = outputs.get(str(self._rule.output))
            if scores is None:
                return None
            s = np.asarray(scores)
            if s.ndim != 2 or s.shape != (rows, self.reference.classes) or s.dtype.kind != "f":
                return None
            block[2], block[3] = class_scores(self._rule, s)
        return block

    def _append(self, block: np.ndarray) -> None:
        size = self._buffer.shape[1]
        rows = block.shape[1]
        self._since += rows
        if rows >= size:
            self._buffer[:] = block[:, -size:]
            self._position, self._filled = 0, size
            return
        first = min(rows, size - self._position)
        self._buffer[:, self._position : self._position + first] = block[:, :first]
        self._buffer[:, : rows - first] = block[:, first:]
        self._position = (self._position + rows) % size
        self._filled = min(size, self._filled + rows)

    def _compare(self) -> None:
        window = self._buffer[:, : self._filled]
        n = window.shape[1]
        samples: list[tuple[str, np.ndarray, np.ndarray]] = [
            ("input_mean", self._mean_ref, window[0]),
            ("input_std", self._std_ref, window[1]),
        ]
        scores: dict[tuple[str, str], float] = {}
        if self._rule is not None:
            samples.append(("confidence", self._conf_ref, window[2]))
            fine = np.minimum((window[2] * CONFIDENCE_BINS).astype(np.int64), CONFIDENCE_BINS - 1)
            got = np.bincount(self._groups[fine], minlength=self._group_ref.size)
            scores["confidence", "psi"] = psi(self._group_ref, got)
            classes = np.bincount(window[3].astype(np.int64), minlength=self.reference.classes)
            scores["class", "psi"] = psi(self._class_ref, classes)
        pvalues: dict[tuple[str, str], float] = {}
        for signal, ref, values in samples:
            scores[signal, "ks"] = d = _ks_sorted(ref, np.sort(values))
            pvalues[signal, "ks"] = ks_pvalue(d, n, ref.size)
        self._scores, self._pvalues = scores, pvalues
        self._level = self._judge(scores, pvalues)
        self.windows += 1
        self.alerts += self._level == 2
        self.warnings += self._level == 1

    def _judge(
        self, scores: Mapping[tuple[str, str], float], pvalues: Mapping[tuple[str, str], float]
    ) -> int:
        s = self.settings
        psis = [v for (_, test), v in scores.items() if test == "psi"]
        least = min(pvalues.values())
        if max(psis, default=0.0) >= s.psi_alert or least < s.ks_alert / self._ks:
            return 2
        if max(psis, default=0.0) >= s.psi_warn or least < s.ks_warn / self._ks:
            return 1
        return 0
