"""Per-node counter history and the statistics of a cohort over an analysis window.

Agents send, per bundle they run, CUMULATIVE counters since their process started
(:class:`Counters`, the JSON document of a heartbeat). :class:`History` keeps the last
samples of each (node, bundle) and answers what happened between two times
(:class:`Delta`): the sum of the differences of consecutive samples inside the window
that both carry the version asked for and come from the same agent process, with no
counter gone down. A restart (a new ``started_s``) or a version switch between two
samples breaks the chain; that pair is skipped, never counted as negative traffic.
:func:`tierwise.control.cohort.cohort_stats` merges the deltas of a cohort's nodes
into the figures the gates compare (p99, error rate, agreement with the cloud tier,
joules per inference, fallback rate).

Latency histograms of different nodes merge exactly when their bounds are equal. When
they differ (agents of different releases), both are re-bucketed onto the bounds they
share: each bucket of the finer histogram lies inside one bucket of the shared bounds, so
nothing is invented, only resolution lost; with no shared finite bound the p99 is None.

Cheap by design: :meth:`History.add` is O(1) (a bounded deque per key, an LRU bound on
keys) and stores each sample as one flat ``array('d')``.
"""

from __future__ import annotations

import math
import threading
from array import array
from bisect import bisect_left
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from functools import reduce
from itertools import pairwise
from typing import Any

from tierwise.errors import ConfigError

__all__ = ["MAX_BUCKETS", "Counters", "Delta", "History"]

#: Most latency bounds a counters document may carry.
MAX_BUCKETS = 64
#: The plain counters of a document, in the order History stores them.
_TALLIES = ("requests", "errors", "inferences", "agree", "disagree", "routed", "fallbacks")
_INTERN_LIMIT = 4096


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class Counters:
    """One bundle's cumulative counters on one node, as its agent sent them.

    ``latency_counts`` are cumulative (Prometheus' ``le`` buckets): one per bound of
    ``latency_bounds_s`` and a last one for ``+Inf``, the number of all observations.
    """

    started_s: float
    digest: str | None
    requests: int
    errors: int
    latency_bounds_s: tuple[float, ...]
    latency_counts: tuple[int, ...]
    energy_j: float
    inferences: int
    agree: int
    disagree: int
    routed: int
    fallbacks: int

    def __post_init__(self) -> None:
        def bad(name: str, expected: str, got: object) -> ConfigError:
            return ConfigError(f"counters.{name}", expected, got)

        for name in ("started_s", "energy_j"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0:
                raise bad(name, "a finite number >= 0", value)
        digest = self.digest
        if digest is not None and not (isinstance(digest, str) and 0 < len(digest) <= 200):
            raise bad("digest", "null or a bundle digest (1 to 200 characters)", digest)
        for name in _TALLIES:
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                raise bad(name, "a whole number >= 0", value)
        bounds = self.latency_bounds_s
        if not isinstance(bounds, tuple) or len(bounds) > MAX_BUCKETS:
            raise bad("latency_bounds_s", f"a list of at most {MAX_BUCKETS} numbers", bounds)
        if not all(_is_number(b) and b > 0 for b in bounds):
            raise bad("latency_bounds_s", "finite upper bounds > 0 (seconds)", bounds)
        if any(low >= high for low, high in pairwise(bounds)):
            raise bad("latency_bounds_s", "strictly ascending bounds", bounds)
        counts = self.latency_counts
        if not isinstance(counts, tuple) or len(counts) != len(bounds) + 1:
            expected = f"{len(bounds) + 1} counts (one per bound, then +Inf)"
            raise bad("latency_counts", expected, counts)
        if not all(_is_int(c) and c >= 0 for c in counts):
            raise bad("latency_counts", "whole numbers >= 0", counts)
        if any(low > high for low, high in pairwise(counts)):
            raise bad("latency_counts", "cumulative counts (never decreasing)", counts)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], where: str) -> Counters:
        """The counters of a heartbeat's JSON document; ConfigError naming ``where`` and
        the field. Fields this version does not know are ignored (a newer agent)."""
        if not isinstance(doc, Mapping):
            raise ConfigError(where, "a counters object", type(doc).__name__)
        values: dict[str, Any] = {}
        for field in fields(cls):
            if field.name not in doc:
                raise ConfigError(f"{where}.{field.name}", "a value (the field is missing)")
            values[field.name] = doc[field.name]
        for name in ("latency_bounds_s", "latency_counts"):
            if not isinstance(values[name], list):
                raise ConfigError(f"{where}.{name}", "a list", values[name])
            floats = name == "latency_bounds_s"
            values[name] = tuple(float(v) if floats and _is_number(v) else v for v in values[name])
        try:
            return cls(**values)
        except ConfigError as exc:
            name = exc.parameter.removeprefix("counters.")
            raise ConfigError(f"{where}.{name}", exc.expected, exc.got) from None

    def to_doc(self) -> dict[str, Any]:
        """The JSON document :meth:`from_doc` reads."""
        doc = {f.name: getattr(self, f.name) for f in fields(self)}
        doc["latency_bounds_s"] = list(self.latency_bounds_s)
        doc["latency_counts"] = list(self.latency_counts)
        return doc


def _rebucket(
    bounds: tuple[float, ...], counts: Iterable[int], onto: tuple[float, ...]
) -> list[int]:
    """Per-bucket ``counts`` over ``bounds`` moved onto ``onto`` (a subset of ``bounds``)."""
    out = [0] * (len(onto) + 1)
    for bound, count in zip((*bounds, math.inf), counts, strict=True):
        out[len(onto) if math.isinf(bound) else bisect_left(onto, bound)] += count
    return out


@dataclass(frozen=True, slots=True)
class Delta:
    """What one node (or, summed, several) did for one bundle over a window.

    ``latency_counts`` are per bucket (NOT cumulative): one per bound of
    ``latency_bounds_s`` and a last one above the highest bound. ``covered_s`` is the
    time the counted sample pairs span (summed over nodes when deltas are added).
    Adding deltas with different bounds re-buckets both onto the bounds they share.
    """

    requests: int
    errors: int
    latency_bounds_s: tuple[float, ...]
    latency_counts: tuple[int, ...]
    energy_j: float
    inferences: int
    agree: int
    disagree: int
    routed: int
    fallbacks: int
    covered_s: float

    @property
    def observations(self) -> int:
        """Latency observations in the histogram."""
        return sum(self.latency_counts)

    def __add__(self, other: object) -> Delta:
        if not isinstance(other, Delta):
            return NotImplemented
        bounds = self.latency_bounds_s
        if not other.observations:
            counts = list(self.latency_counts)
        elif not self.observations:
            bounds, counts = other.latency_bounds_s, list(other.latency_counts)
        elif bounds == other.latency_bounds_s:
            counts = [a + b for a, b in zip(self.latency_counts, other.latency_counts, strict=True)]
        else:
            bounds = tuple(sorted(set(bounds) & set(other.latency_bounds_s)))
            mine = _rebucket(self.latency_bounds_s, self.latency_counts, bounds)
            theirs = _rebucket(other.latency_bounds_s, other.latency_counts, bounds)
            counts = [a + b for a, b in zip(mine, theirs, strict=True)]
        return Delta(
            self.requests + other.requests, self.errors + other.errors, bounds, tuple(counts),
            self.energy_j + other.energy_j, self.inferences + other.inferences,
            self.agree + other.agree, self.disagree + other.disagree, self.routed + other.routed,
            self.fallbacks + other.fallbacks, self.covered_s + other.covered_s,
        )  # fmt: skip


class _Sample:
    """One stored sample: the tallies, energy and per-bucket latency counts, flat.
    ``continues``: the pair (the sample before it, this one) may be counted (same agent
    start, version and bounds, no counter gone down); worked out once, on add."""

    __slots__ = ("at_s", "bounds", "continues", "digest", "started_s", "values")

    def __init__(
        self, at_s: float, started_s: float, digest: str | None, bounds: tuple[float, ...],
        values: array[float], before: _Sample | None,
    ) -> None:  # fmt: skip
        self.at_s, self.started_s, self.digest = at_s, started_s, digest
        self.bounds, self.values = bounds, values
        self.continues = (
            before is not None and before.started_s == started_s and before.digest == digest
            and before.bounds == bounds
            and all(b >= a for a, b in zip(before.values, values, strict=True))
        )  # fmt: skip


def _flatten(c: Counters) -> array[float]:
    values = array("d", (getattr(c, name) for name in _TALLIES))
    values.append(c.energy_j)
    previous = 0
    for count in c.latency_counts:  # per bucket, so each value is a counter of its own
        values.append(count - previous)
        previous = count
    return values


_ENERGY = len(_TALLIES)
_BUCKETS = _ENERGY + 1


def _delta(first: _Sample, last: _Sample) -> Delta:
    total = [b - a for a, b in zip(first.values, last.values, strict=True)]
    tallies = {name: round(total[i]) for i, name in enumerate(_TALLIES)}
    return Delta(
        latency_bounds_s=last.bounds, latency_counts=tuple(round(c) for c in total[_BUCKETS:]),
        energy_j=total[_ENERGY], covered_s=last.at_s - first.at_s, **tallies,
    )  # fmt: skip


class History:
    """The last ``max_samples`` heartbeats of each (node, bundle), for at most
    ``max_keys`` pairs (the least recently updated is dropped first). Heartbeats may be
    added on one thread while another analyses: a lock guards the rings.

    Each sample costs about 400 bytes (15 latency bounds), so 10,000 nodes with one
    bundle each and 64 samples hold about 260 MB at most.
    """

    def __init__(self, *, max_samples: int = 64, max_keys: int = 50_000) -> None:
        if not _is_int(max_samples) or not 2 <= max_samples <= 100_000:
            raise ConfigError("max_samples", "a whole number in [2, 100000]", max_samples)
        if not _is_int(max_keys) or max_keys < 1:
            raise ConfigError("max_keys", "a whole number >= 1", max_keys)
        self.max_samples, self.max_keys = max_samples, max_keys
        self._rings: OrderedDict[tuple[str, str], deque[_Sample]] = OrderedDict()
        self._bundles: dict[str, set[str]] = {}
        self._interned: dict[object, Any] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many (node, bundle) pairs are kept."""
        return len(self._rings)

    def _intern(self, value: Any) -> Any:
        if len(self._interned) >= _INTERN_LIMIT:  # one copy of each digest and bounds
            return self._interned.get(value, value)
        return self._interned.setdefault(value, value)

    def add(self, node: str, bundle: str, at_s: float, counters: Counters) -> bool:
        """Keep one heartbeat's counters, received at ``at_s``. False (and nothing kept)
        when it is not newer than the pair's last sample."""
        if not _is_number(at_s):
            raise ConfigError("at_s", "a finite time in seconds", at_s)
        values = _flatten(counters)
        key = (node, bundle)
        with self._lock:
            ring = self._rings.get(key)
            if ring is None:
                ring = self._rings[key] = deque(maxlen=self.max_samples)
                self._bundles.setdefault(node, set()).add(bundle)
                if len(self._rings) > self.max_keys:
                    (old_node, old_bundle), _ = self._rings.popitem(last=False)
                    self._drop_index(old_node, old_bundle)
            elif ring and ring[-1].at_s >= at_s:
                return False
            else:
                self._rings.move_to_end(key)
            bounds = self._intern(counters.latency_bounds_s)
            digest = self._intern(counters.digest)
            before = ring[-1] if ring else None
            ring.append(_Sample(float(at_s), counters.started_s, digest, bounds, values, before))
        return True

    def _drop_index(self, node: str, bundle: str) -> None:
        bundles = self._bundles.get(node)
        if bundles is not None:
            bundles.discard(bundle)
            if not bundles:
                del self._bundles[node]

    def forget(self, node: str) -> None:
        """Drop every sample of ``node`` (it left the fleet)."""
        with self._lock:
            for bundle in self._bundles.pop(node, set()):
                self._rings.pop((node, bundle), None)

    def delta(
        self, node: str, bundle: str, *, since_s: float, until_s: float, digest: str | None
    ) -> Delta | None:
        """What (node, bundle) did on version ``digest`` between ``since_s`` and
        ``until_s``: the sum over consecutive sample pairs that both lie in the window,
        both report ``digest`` and the same agent start, and have no counter gone down.
        None when no pair qualifies."""
        with self._lock:
            ring = tuple(self._rings.get((node, bundle), ()))
        parts: list[Delta] = []
        run: tuple[_Sample, _Sample] | None = None  # the first and last of countable pairs
        for sample in ring:
            inside = since_s <= sample.at_s <= until_s and sample.digest == digest
            if inside and run is not None and sample.continues:
                run = (run[0], sample)  # a run telescopes: its sum is its last minus its first
                continue
            if run is not None and run[1] is not run[0]:
                parts.append(_delta(*run))
            run = (sample, sample) if inside else None
        if run is not None and run[1] is not run[0]:
            parts.append(_delta(*run))
        return reduce(Delta.__add__, parts) if parts else None
