"""Round-trip times as a distribution: a log-normal fitted to a link's p50 and p99.

A plan and a fleet spec give each link's round trip as ``rtt_p50_ms`` and ``rtt_p99_ms``.
Network delays are skewed to the right (a floor, then a tail), which a log-normal with
``median = p50`` and ``sigma = ln(p99 / p50) / z(0.99)`` reproduces at both quantiles.
``p99 == p50`` is a constant delay. The link emulator (:mod:`tierwise.link.relay`) and the
simulator draw from the same model, so what one predicts the other measures.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from tierwise.errors import ConfigError

__all__ = ["RttModel", "Z99"]

#: The standard normal's 0.99 quantile.
Z99 = NormalDist().inv_cdf(0.99)


@dataclass(frozen=True, slots=True)
class RttModel:
    """A link's round trip: log-normal through ``p50_ms`` and ``p99_ms`` (see the module
    docstring). ConfigError for a negative or inverted pair."""

    p50_ms: float
    p99_ms: float

    def __post_init__(self) -> None:
        for name, value in (("rtt_p50_ms", self.p50_ms), ("rtt_p99_ms", self.p99_ms)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(name, "a number of milliseconds", value)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(name, "a finite number of milliseconds >= 0", value)
        if self.p99_ms < self.p50_ms:
            raise ConfigError("rtt_p99_ms", f"at least rtt_p50_ms ({self.p50_ms})", self.p99_ms)

    @property
    def sigma(self) -> float:
        """The log-normal's shape (0: a constant delay)."""
        if self.p50_ms <= 0 or self.p99_ms <= self.p50_ms:
            return 0.0
        return math.log(self.p99_ms / self.p50_ms) / Z99

    def quantile_ms(self, q: float) -> float:
        """The round trip at quantile ``q`` in (0, 1)."""
        if not 0.0 < q < 1.0:
            raise ConfigError("q", "a quantile in (0, 1)", q)
        if self.p50_ms <= 0:
            return 0.0
        return self.p50_ms * math.exp(self.sigma * NormalDist().inv_cdf(q))

    def sample_ms(self, rng: random.Random) -> float:
        """One round trip."""
        if self.p50_ms <= 0:
            return 0.0
        sigma = self.sigma
        return self.p50_ms if sigma == 0.0 else rng.lognormvariate(math.log(self.p50_ms), sigma)

    def samples_ms(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` round trips at once (the simulator's vectorised draws)."""
        if self.p50_ms <= 0:
            return np.zeros(n)
        sigma = self.sigma
        if sigma == 0.0:
            return np.full(n, float(self.p50_ms))
        return rng.lognormal(math.log(self.p50_ms), sigma, n)
