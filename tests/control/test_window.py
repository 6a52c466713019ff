"""Counter history and cohort statistics: hand-computed quantiles and deltas, resets and
version switches skipped, memory bounded."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import pytest

from tierwise.control.cohort import CohortStats, cohort_stats, quantile
from tierwise.control.window import MAX_BUCKETS, Counters, Delta, History
from tierwise.errors import ConfigError

OLD = "sha256:" + "a" * 64
NEW = "sha256:" + "b" * 64
BOUNDS = (0.1, 0.2, 0.4)


def doc(
    step: int, *, started_s: float = 1000.0, digest: str | None = OLD, **extra: Any
) -> dict[str, Any]:
    """A node that, each step, serves 10 requests (1 failing): per bucket 1, 3, 5 and 1
    above 0.4 s; spends 2 J on 20 rows; 4 checks (3 agree); routes 12 (1 fallback)."""
    out = {
        "started_s": started_s, "digest": digest, "requests": 10 * step, "errors": step,
        "latency_bounds_s": list(BOUNDS), "latency_counts": [step, 4 * step, 9 * step, 10 * step],
        "energy_j": 2.0 * step, "inferences": 20 * step, "agree": 3 * step, "disagree": step,
        "routed": 12 * step, "fallbacks": step,
    }  # fmt: skip
    return out | extra


def counters(step: int, **kw: Any) -> Counters:
    return Counters.from_doc(doc(step, **kw), "test")


def delta(**kw: Any) -> Delta:
    base: dict[str, Any] = {
        "requests": 0, "errors": 0, "latency_bounds_s": BOUNDS, "latency_counts": (0, 0, 0, 0),
        "energy_j": 0.0, "inferences": 0, "agree": 0, "disagree": 0, "routed": 0,
        "fallbacks": 0, "covered_s": 10.0,
    }  # fmt: skip
    return Delta(**(base | kw))


# -- the counters document ----------------------------------------------------------------


def test_a_counters_document_round_trips_and_ignores_unknown_fields() -> None:
    c = Counters.from_doc(doc(3) | {"newer_field": 1}, "counters.digits")
    assert c.latency_counts == (3, 12, 27, 30)
    assert c.to_doc() == doc(3)
    assert Counters.from_doc(doc(0, digest=None), "x").digest is None
    assert Counters.from_doc(doc(1, latency_bounds_s=[1, 2, 4]), "x").latency_bounds_s == (
        1.0,
        2.0,
        4.0,
    )


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        ({"requests": -1}, "requests", "a whole number >= 0"),
        ({"errors": True}, "errors", "a whole number >= 0"),
        ({"agree": 1.5}, "agree", "a whole number >= 0"),
        ({"energy_j": float("nan")}, "energy_j", "a finite number >= 0"),
        ({"started_s": "yesterday"}, "started_s", "a finite number >= 0"),
        ({"digest": 7}, "digest", "null or a bundle digest"),
        ({"digest": ""}, "digest", "null or a bundle digest"),
        ({"latency_bounds_s": [0.2, 0.1, 0.4]}, "latency_bounds_s", "strictly ascending"),
        ({"latency_bounds_s": [0.1, 0.1, 0.4]}, "latency_bounds_s", "strictly ascending"),
        ({"latency_bounds_s": [0, 0.1, 0.4]}, "latency_bounds_s", "finite upper bounds > 0"),
        ({"latency_bounds_s": [0.1, 0.2, float("inf")]}, "latency_bounds_s", "finite upper"),
        ({"latency_bounds_s": "0.1,0.2"}, "latency_bounds_s", "a list"),
        ({"latency_counts": [1, 2, 3]}, "latency_counts", "4 counts (one per bound, then +Inf)"),
        ({"latency_counts": [5, 4, 9, 10]}, "latency_counts", "cumulative counts"),
        ({"latency_counts": [1, 2, 3, -4]}, "latency_counts", "whole numbers >= 0"),
    ],
)
def test_bad_counters_name_where_and_the_field(
    change: dict[str, Any], field: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Counters.from_doc(doc(1) | change, "counters.digits")
    assert caught.value.parameter == f"counters.digits.{field}"
    assert expected in caught.value.expected


def test_missing_fields_too_many_bounds_and_non_objects_are_refused() -> None:
    partial = doc(1)
    del partial["routed"]
    with pytest.raises(
        ConfigError, match=r"^counters\.x\.routed: expected a value \(the field is missing\)"
    ):
        Counters.from_doc(partial, "counters.x")
    bounds = [0.001 * (i + 1) for i in range(MAX_BUCKETS + 1)]
    many = doc(0, latency_bounds_s=bounds, latency_counts=[0] * (len(bounds) + 1))
    with pytest.raises(ConfigError, match=f"at most {MAX_BUCKETS} numbers"):
        Counters.from_doc(many, "x")
    with pytest.raises(ConfigError, match=r"^x: expected a counters object"):
        Counters.from_doc([1, 2], "x")  # type: ignore[arg-type]


# -- quantiles ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "counts", "expected"),
    [
        # 100 observations: 10 in (0, 0.1], 30 in (0.1, 0.2], 50 in (0.2, 0.4], 10 above
        (0.5, (10, 30, 50, 10), 0.2 + 0.2 * (50 - 40) / 50),  # 0.24
        (0.05, (10, 30, 50, 10), 0.1 * 5 / 10),  # lowest bucket from 0: 0.05
        (0.25, (10, 30, 50, 10), 0.1 + 0.1 * (25 - 10) / 30),  # 0.15
        (0.9, (10, 30, 50, 10), 0.4),  # exactly the top of the last finite bucket
        (0.99, (10, 30, 50, 10), 0.4),  # in +Inf: the highest finite bound
        (0.99, (0, 0, 0, 7), 0.4),
        (0.99, (100, 0, 0, 0), 0.099),
        (0.99, (0, 0, 100, 0), 0.2 + 0.2 * 0.99),  # 0.398
        (0.0, (0, 5, 5, 0), 0.1),  # at an empty lowest bucket: where the next one starts
        (1.0, (1, 1, 1, 0), 0.4),
    ],
)
def test_quantiles_are_read_as_prometheus_reads_them(
    q: float, counts: tuple[int, ...], expected: float
) -> None:
    found = quantile(q, BOUNDS, counts)
    assert found is not None
    assert found == pytest.approx(expected)


def test_quantile_without_observations_or_bounds_is_none_and_bad_input_is_refused() -> None:
    assert quantile(0.99, BOUNDS, (0, 0, 0, 0)) is None
    assert quantile(0.99, (), (12,)) is None
    with pytest.raises(ConfigError, match=r"^q: expected a quantile in \[0, 1\]"):
        quantile(1.5, BOUNDS, (1, 1, 1, 1))
    with pytest.raises(ConfigError, match=r"^q: "):
        quantile(float("nan"), BOUNDS, (1, 1, 1, 1))
    with pytest.raises(ConfigError, match=r"^counts: expected 4 counts"):
        quantile(0.5, BOUNDS, (1, 1, 1))


# -- deltas -------------------------------------------------------------------------------


def test_a_delta_sums_consecutive_pairs_within_the_window() -> None:
    history = History()
    for step in range(6):  # at 0, 10, ..., 50 s
        assert history.add("n1", "digits", 10.0 * step, counters(step))
    d = history.delta("n1", "digits", since_s=10, until_s=40, digest=OLD)
    assert d is not None
    # samples at 10, 20, 30, 40: three steps of traffic over 30 s
    assert (d.requests, d.errors, d.inferences, d.energy_j) == (30, 3, 60, 6.0)
    assert d.latency_counts == (3, 9, 15, 3)  # per bucket, not cumulative
    assert d.latency_bounds_s == BOUNDS
    assert (d.agree, d.disagree, d.routed, d.fallbacks, d.covered_s) == (9, 3, 36, 3, 30.0)
    assert d.observations == 30
    assert history.delta("n1", "digits", since_s=10, until_s=19, digest=OLD) is None  # one sample
    assert history.delta("n1", "digits", since_s=0, until_s=50, digest=NEW) is None
    assert history.delta("n1", "other", since_s=0, until_s=50, digest=OLD) is None
    assert history.delta("n9", "digits", since_s=0, until_s=50, digest=OLD) is None


def test_a_restart_and_a_version_switch_break_the_chain() -> None:
    history = History()
    history.add("n1", "digits", 0.0, counters(0))
    history.add("n1", "digits", 10.0, counters(5))  # +5 steps on OLD
    history.add("n1", "digits", 20.0, counters(1, started_s=2000.0))  # restarted: skipped
    history.add("n1", "digits", 30.0, counters(3, started_s=2000.0))  # +2 steps on OLD
    history.add("n1", "digits", 40.0, counters(4, started_s=2000.0, digest=NEW))  # switch: skipped
    history.add("n1", "digits", 50.0, counters(7, started_s=2000.0, digest=NEW))  # +3 on NEW
    history.add("n1", "digits", 60.0, counters(9, started_s=2000.0, digest=NEW))  # +2 on NEW
    old = history.delta("n1", "digits", since_s=0, until_s=60, digest=OLD)
    new = history.delta("n1", "digits", since_s=0, until_s=60, digest=NEW)
    assert old is not None
    assert new is not None
    assert (old.requests, old.covered_s) == (70, 20.0)
    assert (new.requests, new.covered_s) == (50, 20.0)
    assert new.latency_counts == (5, 15, 25, 5)


def test_a_counter_that_goes_down_without_a_restart_skips_that_pair() -> None:
    history = History()
    history.add("n1", "digits", 0.0, counters(1))
    history.add("n1", "digits", 10.0, counters(3))
    lower = doc(4) | {"energy_j": 1.0}  # energy went down: this pair is not trusted
    history.add("n1", "digits", 20.0, Counters.from_doc(lower, "x"))
    history.add("n1", "digits", 30.0, counters(6))
    d = history.delta("n1", "digits", since_s=0, until_s=30, digest=OLD)
    assert d is not None
    assert (d.requests, d.covered_s) == (20 + 20, 20.0)  # 0->10 and 20->30
    assert d.energy_j == pytest.approx(4.0 + 11.0)


def test_a_latency_bucket_going_down_breaks_the_chain_too() -> None:
    history = History()
    history.add("n1", "digits", 0.0, counters(2))
    shifted = doc(3) | {"latency_counts": [1, 12, 27, 30]}  # bucket 1 went from 2 to 1
    history.add("n1", "digits", 10.0, Counters.from_doc(shifted, "x"))
    assert history.delta("n1", "digits", since_s=0, until_s=10, digest=OLD) is None


def test_samples_not_newer_than_the_last_are_not_kept() -> None:
    history = History()
    assert history.add("n1", "digits", 10.0, counters(1))
    assert not history.add("n1", "digits", 10.0, counters(2))
    assert not history.add("n1", "digits", 5.0, counters(2))
    assert history.add("n1", "digits", 20.0, counters(3))
    d = history.delta("n1", "digits", since_s=0, until_s=20, digest=OLD)
    assert d is not None
    assert (d.requests, d.covered_s) == (20, 10.0)  # from step 1 to step 3
    with pytest.raises(ConfigError, match=r"^at_s: "):
        history.add("n1", "digits", math.inf, counters(3))


def test_memory_is_bounded_per_key_and_in_keys() -> None:
    history = History(max_samples=4, max_keys=3)
    for step in range(10):
        history.add("n1", "digits", 10.0 * step, counters(step))
    d = history.delta("n1", "digits", since_s=0, until_s=1000, digest=OLD)
    assert d is not None
    assert (d.requests, d.covered_s) == (30, 30.0)  # only the last 4 samples are kept

    def kept(node: str, bundle: str = "digits") -> bool:
        return history.delta(node, bundle, since_s=0, until_s=1000, digest=OLD) is not None

    for node in ("n2", "n3"):
        history.add(node, "digits", 0.0, counters(0))
        history.add(node, "digits", 10.0, counters(1))
    history.add("n1", "digits", 100.0, counters(10))  # n1 is now the most recent
    history.add("n4", "digits", 0.0, counters(0))  # evicts the least recently updated: n2
    assert len(history) == 3
    assert [kept(n) for n in ("n1", "n2", "n3")] == [True, False, True]
    history.add("n4", "audio", 0.0, counters(0))  # evicts n3
    history.add("n4", "audio", 10.0, counters(1))
    assert [kept(n) for n in ("n1", "n3")] == [True, False]
    assert kept("n4", "audio")
    history.forget("n4")
    assert len(history) == 1
    assert not kept("n4", "audio")
    history.forget("n4")  # twice is fine
    with pytest.raises(ConfigError, match=r"^max_samples: "):
        History(max_samples=1)
    with pytest.raises(ConfigError, match=r"^max_keys: "):
        History(max_keys=0)


def test_heartbeats_and_analyses_may_run_on_different_threads() -> None:
    history = History(max_samples=16, max_keys=50)
    failures: list[BaseException] = []
    done = threading.Event()

    def analyse() -> None:
        try:
            while not done.is_set():
                for node in range(20):
                    history.delta(f"n{node}", "digits", since_s=0, until_s=1e9, digest=OLD)
        except BaseException as exc:  # reported below
            failures.append(exc)

    reader = threading.Thread(target=analyse)
    reader.start()
    try:
        for step in range(300):
            for node in range(20):
                history.add(f"n{node}", "digits", float(step), counters(step))
            if step % 50 == 0:
                history.forget("n0")
    finally:
        done.set()
        reader.join(timeout=30)
    assert failures == []
    d = history.delta("n5", "digits", since_s=0, until_s=1e9, digest=OLD)
    assert d is not None
    assert d.requests == 150  # the last 16 samples: 15 steps of 10 requests


def test_adding_ten_thousand_nodes_a_round_is_cheap() -> None:
    history = History(max_samples=8)
    heartbeats = [counters(step) for step in range(3)]
    start = time.perf_counter()
    for step, c in enumerate(heartbeats):
        for node in range(10_000):
            history.add(f"node-{node}", "digits", 10.0 * step, c)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"30,000 adds took {elapsed:.2f} s"
    deltas = [
        history.delta(f"node-{n}", "digits", since_s=0, until_s=20, digest=OLD)
        for n in range(10_000)
    ]
    stats = cohort_stats(d for d in deltas if d is not None)
    assert (stats.nodes, stats.requests) == (10_000, 200_000)


# -- merging and cohort statistics --------------------------------------------------------


def test_deltas_with_the_same_bounds_add_bucket_by_bucket() -> None:
    a = delta(requests=10, errors=1, latency_counts=(1, 2, 3, 4), energy_j=1.5, agree=2)
    b = delta(requests=5, latency_counts=(4, 3, 2, 1), energy_j=0.5, disagree=1, covered_s=5.0)
    total = a + b
    assert total.latency_counts == (5, 5, 5, 5)
    assert (total.requests, total.errors, total.energy_j, total.agree, total.disagree) == (
        15, 1, 2.0, 2, 1,
    )  # fmt: skip
    assert total.covered_s == 15.0


def test_deltas_with_different_bounds_are_rebucketed_onto_the_shared_bounds() -> None:
    fine = delta(latency_bounds_s=(0.05, 0.1, 0.2, 0.4), latency_counts=(1, 2, 3, 4, 5))
    coarse = delta(latency_bounds_s=(0.1, 0.4, 0.8), latency_counts=(10, 20, 30, 40))
    total = fine + coarse
    assert total.latency_bounds_s == (0.1, 0.4)
    # fine: (0,0.1] 1+2, (0.1,0.4] 3+4, above 5; coarse: 10, 20, 30+40
    assert total.latency_counts == (13, 27, 75)
    assert (coarse + fine).latency_counts == total.latency_counts
    disjoint = fine + delta(latency_bounds_s=(0.3,), latency_counts=(1, 1))
    assert disjoint.latency_bounds_s == ()
    assert disjoint.latency_counts == (17,)
    assert (
        cohort_stats(
            [fine, delta(latency_bounds_s=(0.3,), latency_counts=(1, 1), requests=1)]
        ).p99_s
        is None
    )


def test_a_delta_without_observations_takes_the_others_bounds() -> None:
    empty = delta(latency_bounds_s=(), latency_counts=(0,))
    full = delta(latency_counts=(1, 2, 3, 4))
    assert (empty + full).latency_bounds_s == BOUNDS
    assert (full + empty).latency_counts == (1, 2, 3, 4)


def test_cohort_statistics_from_deltas() -> None:
    a = delta(requests=60, errors=3, latency_counts=(10, 30, 15, 5), energy_j=12.0,
              inferences=120, agree=18, disagree=2, routed=70, fallbacks=7)  # fmt: skip
    b = delta(requests=40, errors=1, latency_counts=(0, 0, 35, 5), energy_j=8.0,
              inferences=80, agree=9, disagree=1, routed=30, fallbacks=3)  # fmt: skip
    stats = cohort_stats([a, b])
    assert (stats.nodes, stats.requests, stats.errors, stats.checks) == (2, 100, 4, 30)
    assert stats.error_rate == pytest.approx(0.04)
    assert stats.agreement == pytest.approx(27 / 30)
    assert stats.energy_j_per_inference == pytest.approx(20.0 / 200)
    assert stats.fallback_rate == pytest.approx(0.1)
    assert stats.p99_s == pytest.approx(0.4)  # rank 99 of 100 lies in +Inf (10 above 0.4 s)
    assert CohortStats(**stats.to_dict()) == stats


def test_cohort_statistics_are_none_where_nothing_can_be_told() -> None:
    quiet = delta(agree=10, disagree=9, routed=0, energy_j=3.0, inferences=0)
    stats = cohort_stats([quiet], min_checks=20)
    assert (stats.nodes, stats.requests, stats.checks) == (1, 0, 19)
    assert stats.p99_s is None
    assert stats.error_rate is None
    assert stats.agreement is None  # 19 checks < 20
    assert stats.energy_j_per_inference is None  # no inferences
    assert stats.fallback_rate is None
    assert cohort_stats([quiet], min_checks=19).agreement == pytest.approx(10 / 19)
    no_meter = cohort_stats([delta(requests=5, latency_counts=(5, 0, 0, 0), inferences=5)])
    assert no_meter.energy_j_per_inference is None  # no energy accounting: 0 J
    assert no_meter.p99_s == pytest.approx(0.099)
    assert cohort_stats([]) == CohortStats(0, 0, 0, None, None, None, None, None)
    with pytest.raises(ConfigError, match=r"^min_checks: "):
        cohort_stats([], min_checks=0)
