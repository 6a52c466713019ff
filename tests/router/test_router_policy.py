"""The routing policy, table-driven: privacy x residency x tier kind, deadlines, health,
budgets, off-peak deferral and request narrowing, each checking the route and its reasons."""

from __future__ import annotations

import random
import time
import timeit
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tierwise.errors import ConfigError, DeadlineExceededError, RouteError
from tierwise.planfile.schema import Plan
from tierwise.router.explain import explain, route_explain
from tierwise.router.ledger import SpendLedger
from tierwise.router.policy import BUDGET_DEGRADED, Policy
from tierwise.router.routes import RouteCache
from tierwise.router.types import RequestMeta, Route, TierDecision, TierState

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plans" / "digits.yaml"
DAY_S = 86_400.0
HOUR_S = 3_600.0
T0 = 1_700_006_400.0  # 2023-11-15 00:00 UTC, a midnight


def tier(
    kind: str,
    *,
    site: str | None = None,
    region: str | None = None,
    rtt_ms: float = 0.0,
    local: bool = False,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "kind": kind,
        "rtt_p50_ms": rtt_ms / 2,
        "rtt_p99_ms": rtt_ms,
        "cost_usd_per_inference": 1e-6,
    }
    if site is not None:
        entry["site"] = site
    if region is not None:
        entry["region"] = region
    if local:
        entry["local"] = {"model": "tiny.onnx"}
    else:
        entry.update(url="http://127.0.0.1:9000", model="m")
    return entry


TIERS = {
    "device": tier("device", site="s1", region="r1", local=True),
    "edge": tier("edge", site="s1", region="r1", rtt_ms=20),
    "edge2": tier("edge", site="s2", region="r1", rtt_ms=30),
    "cloud": tier("cloud", region="r1", rtt_ms=40),
    "cloud-eu": tier("cloud", region="r2", rtt_ms=90),
}


def workload(*cascade: str, **fields: Any) -> dict[str, Any]:
    names = cascade or ("device", "edge", "cloud")
    stages: list[dict[str, Any]] = [
        {"tier": t, "rule": "max_prob", "threshold": 0.8} for t in names[:-1]
    ]
    stages.append({"tier": names[-1]})
    return {"privacy": "public", **fields, "cascade": stages}


def policy(workloads: dict[str, dict[str, Any]], **top: Any) -> Policy:
    return Policy(Plan.model_validate({"tiers": TIERS, "workloads": workloads, **top}))


def route(
    p: Policy,
    meta: RequestMeta,
    *,
    now_s: float | None = None,
    tiers: dict[str, TierState] | None = None,
    spent_usd: dict[str, float] | None = None,
) -> Route:
    return p.route(
        meta,
        now_s=meta.received_s if now_s is None else now_s,
        tiers=tiers or {},
        spent_usd=spent_usd or {},
    )


def reasons(r: Route) -> dict[str, str]:
    return {d.tier: d.reason for d in r.decisions}


# --- privacy x residency x tier kind ------------------------------------------------------

ALL = ("device", "edge", "edge2", "cloud", "cloud-eu")
WHERE = {
    "edge": "(edge tier at site 's1')",
    "edge2": "(edge tier at site 's2')",
    "cloud": "(cloud tier in region 'r1')",
    "cloud-eu": "(cloud tier in region 'r2')",
}


def sensitive(t: str) -> str:
    return f"skipped: privacy 'sensitive' keeps data on the device {WHERE[t]}"


def personal(t: str) -> str:
    return f"skipped: privacy 'personal' may not leave site 's1' {WHERE[t]}"


def res_device(t: str) -> str:
    return f"skipped: residency 'device' keeps data on the device {WHERE[t]}"


def res_site(t: str) -> str:
    return f"skipped: residency 'site' keeps data at site 's1' {WHERE[t]}"


def res_region(t: str) -> str:
    return f"skipped: residency 'region' keeps data in region 'r1' {WHERE[t]}"


MATRIX = [
    ("public", "any", ALL, {}),
    ("public", "region", ("device", "edge", "edge2", "cloud"), {"cloud-eu": res_region}),
    ("public", "site", ("device", "edge"), dict.fromkeys(("edge2", "cloud", "cloud-eu"), res_site)),
    ("public", "device", ("device",), dict.fromkeys(ALL[1:], res_device)),
    (
        "personal",
        "any",
        ("device", "edge"),
        dict.fromkeys(("edge2", "cloud", "cloud-eu"), personal),
    ),
    (
        "personal",
        "region",
        ("device", "edge"),
        dict.fromkeys(("edge2", "cloud", "cloud-eu"), personal),
    ),
    (
        "personal",
        "site",
        ("device", "edge"),
        dict.fromkeys(("edge2", "cloud", "cloud-eu"), personal),
    ),
    (
        "personal",
        "device",
        ("device",),
        {
            "edge": res_device,
            "edge2": personal,
            "cloud": personal,
            "cloud-eu": personal,
        },
    ),
    *[
        ("sensitive", r, ("device",), dict.fromkeys(ALL[1:], sensitive))
        for r in ("any", "region", "site", "device")
    ],
]


@pytest.mark.parametrize(("privacy", "residency", "kept", "skipped"), MATRIX)
def test_privacy_residency_matrix(
    privacy: str, residency: str, kept: tuple[str, ...], skipped: dict[str, Any]
) -> None:
    p = policy({"w": workload(*ALL, privacy=privacy, residency=residency)})
    r = route(p, RequestMeta("w", received_s=T0))
    assert r.tiers == kept
    assert [d.tier for d in r.decisions] == list(ALL)
    expected = {t: skipped[t](t) if t in skipped else "kept" for t in ALL}
    assert reasons(r) == expected
    assert all(d.kept == (d.tier in kept) for d in r.decisions)
    assert r.degraded is None
    assert r.defer_until_s is None


@pytest.mark.parametrize(
    ("asked", "field", "kept", "reason"),
    [
        (
            "personal",
            "privacy",
            ("device", "edge"),
            "skipped: privacy 'personal' (narrowed by the request) may not leave site 's1'"
            " (cloud tier in region 'r1')",
        ),
        (
            "sensitive",
            "privacy",
            ("device",),
            "skipped: privacy 'sensitive' (narrowed by the request) keeps data on the device"
            " (cloud tier in region 'r1')",
        ),
        (
            "site",
            "residency",
            ("device", "edge"),
            "skipped: residency 'site' (narrowed by the request) keeps data at site 's1'"
            " (cloud tier in region 'r1')",
        ),
    ],
)
def test_request_narrows_the_workload(
    asked: str, field: str, kept: tuple[str, ...], reason: str
) -> None:
    p = policy({"w": workload()})
    r = route(p, RequestMeta("w", received_s=T0, **{field: asked}))
    assert r.tiers == kept
    assert reasons(r)["cloud"] == reason


@pytest.mark.parametrize(
    ("defaults", "asked", "kept", "reason"),
    [
        (
            {"privacy": "sensitive"},
            {"privacy": "public"},
            ("device",),
            "skipped: privacy 'sensitive' (the request's 'public' cannot widen it) keeps data on"
            " the device (cloud tier in region 'r1')",
        ),
        (
            {"privacy": "personal"},
            {"privacy": "public"},
            ("device", "edge"),
            "skipped: privacy 'personal' (the request's 'public' cannot widen it) may not leave"
            " site 's1' (cloud tier in region 'r1')",
        ),
        (
            {"residency": "site"},
            {"residency": "any"},
            ("device", "edge"),
            "skipped: residency 'site' (the request's 'any' cannot widen it) keeps data at site"
            " 's1' (cloud tier in region 'r1')",
        ),
    ],
)
def test_request_cannot_widen_the_workload(
    defaults: dict[str, str], asked: dict[str, Any], kept: tuple[str, ...], reason: str
) -> None:
    p = policy({"w": workload(**defaults)})
    r = route(p, RequestMeta("w", received_s=T0, **asked))
    assert r.tiers == kept
    assert reasons(r)["cloud"] == reason
    assert p.effective(RequestMeta("w", **asked)).privacy == defaults.get("privacy", "public")


def test_unknown_origin_allows_no_edge_for_personal_data() -> None:
    # No device tier and edges at two sites: the origin site cannot be told.
    p = policy(
        {"w": workload("edge", "edge2", privacy="personal", residency="any", origin_site="s2")}
    )
    r = route(p, RequestMeta("w", received_s=T0))
    assert r.tiers == ("edge2",)
    assert reasons(r)["edge"] == (
        "skipped: privacy 'personal' may not leave site 's2' (edge tier at site 's1')"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("privacy", "secret"), ("residency", "moon"), ("urgency", "whenever")],
)
def test_values_outside_the_allowed_ones_are_refused(field: str, value: str) -> None:
    p = policy({"w": workload()})
    meta = RequestMeta("w", received_s=T0, **{field: value})  # type: ignore[arg-type]
    with pytest.raises(RouteError) as info:
        route(p, meta)
    assert info.value.parameter == field
    assert repr(value) in str(info.value)
    assert info.value.status_code == 400


def test_unknown_workload_names_the_known_ones() -> None:
    p = policy({"w": workload(), "v": workload()})
    with pytest.raises(RouteError) as info:
        route(p, RequestMeta("nope", received_s=T0))
    assert info.value.parameter == "workload"
    assert str(info.value) == "workload: unknown workload 'nope'; known: v, w"


# --- deadlines ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deadline_ms", "waited_s", "p99", "kept", "cloud_reason"),
    [
        (
            1000,
            0.0,
            {"edge": 30.0, "cloud": 180.0},
            ("device", "edge", "cloud"),
            "kept: p99 180 ms + rtt 40 ms <= 1000 ms left of the deadline",
        ),
        (
            150,
            0.0,
            {"edge": 30.0, "cloud": 180.0},
            ("device", "edge"),
            "skipped: p99 180 ms + rtt 40 ms > 150 ms left of the deadline",
        ),
        # 250 ms budget, 50 ms already spent in queues: 200 ms left < 220 ms needed.
        (
            250,
            0.05,
            {"cloud": 180.0},
            ("device", "edge"),
            "skipped: p99 180 ms + rtt 40 ms > 200 ms left of the deadline",
        ),
        (
            30,
            0.0,
            {},
            ("device", "edge"),
            "skipped: rtt 40 ms (no p99 observed yet) > 30 ms left of the deadline",
        ),
        # Exactly enough is enough.
        (
            60,
            0.0,
            {"cloud": 20.0},
            ("device", "edge", "cloud"),
            "kept: p99 20 ms + rtt 40 ms <= 60 ms left of the deadline",
        ),
    ],
)
def test_deadline(
    deadline_ms: float,
    waited_s: float,
    p99: dict[str, float],
    kept: tuple[str, ...],
    cloud_reason: str,
) -> None:
    p = policy({"w": workload()})
    states = {n: TierState(n, p99_ms=v) for n, v in p99.items()}
    meta = RequestMeta("w", deadline_ms=deadline_ms, received_s=T0)
    r = route(p, meta, now_s=T0 + waited_s, tiers=states)
    assert r.tiers == kept
    assert reasons(r)["cloud"] == cloud_reason


def test_deadline_from_the_workload_and_overridden_by_the_request() -> None:
    p = policy({"w": workload(deadline_ms=30)})
    assert route(p, RequestMeta("w", received_s=T0)).tiers == ("device", "edge")
    assert route(p, RequestMeta("w", deadline_ms=500, received_s=T0)).tiers == (
        "device",
        "edge",
        "cloud",
    )


@pytest.mark.parametrize("waited_s", [0.15, 0.5])
def test_deadline_already_past_is_refused_as_a_tier_server_would(waited_s: float) -> None:
    p = policy({"w": workload()})
    with pytest.raises(DeadlineExceededError) as info:
        route(p, RequestMeta("w", deadline_ms=100, received_s=T0), now_s=T0 + waited_s)
    assert info.value.status_code == 408  # what a tier server answers for a passed timeout
    assert info.value.model == "w"
    assert info.value.timeout_us == 100_000
    assert info.value.waited_ms == pytest.approx(waited_s * 1000)
    assert "deadline of 100000 us passed" in str(info.value)


def test_non_positive_deadline_is_refused() -> None:
    p = policy({"w": workload()})
    with pytest.raises(RouteError, match="deadline_ms: expected a positive number"):
        route(p, RequestMeta("w", deadline_ms=-5, received_s=T0))


# --- health -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("states", "order", "expected"),
    [
        (
            {"edge": TierState("edge", breaker_open=True)},
            ("device", "cloud"),
            {"edge": "skipped: breaker open"},
        ),
        (
            {"cloud": TierState("cloud", healthy=False)},
            ("device", "edge"),
            {"cloud": "skipped: unhealthy"},
        ),
        (
            {"edge": TierState("edge", thermal_offload=True)},
            ("device", "cloud"),
            {"edge": "skipped: thermal offload"},
        ),
        # The device is the last resort: it moves to the end rather than out.
        (
            {"device": TierState("device", thermal_offload=True)},
            ("edge", "cloud", "device"),
            {"device": "kept as the last resort: thermal offload"},
        ),
        (
            {
                "device": TierState("device", breaker_open=True),
                "edge": TierState("edge", breaker_open=True),
                "cloud": TierState("cloud", breaker_open=True),
            },
            ("device",),
            {
                "device": "kept as the last resort: breaker open",
                "edge": "skipped: breaker open",
                "cloud": "skipped: breaker open",
            },
        ),
        ({}, ("device", "edge", "cloud"), {}),
    ],
)
def test_health(
    states: dict[str, TierState], order: tuple[str, ...], expected: dict[str, str]
) -> None:
    p = policy({"w": workload()})
    r = route(p, RequestMeta("w", received_s=T0), tiers=states)
    assert r.tiers == order
    assert reasons(r) == {"device": "kept", "edge": "kept", "cloud": "kept", **expected}
    assert r.degraded is None


def test_everything_skipped_gives_an_empty_degraded_route() -> None:
    p = policy({"w": workload("edge", "cloud")})
    down = {n: TierState(n, breaker_open=True) for n in ("edge", "cloud")}
    r = route(p, RequestMeta("w", received_s=T0), tiers=down)
    assert r.tiers == ()
    assert r.degraded == "no tier may serve this request"


# --- budgets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spent", "order", "cloud_reason", "degraded"),
    [
        ({}, ("device", "edge", "cloud"), "kept", None),
        ({"w": 9.99}, ("device", "edge", "cloud"), "kept", None),
        ({"other": 100.0}, ("device", "edge", "cloud"), "kept", None),
        (
            {"w": 10.0},
            ("device", "edge"),
            "skipped: budget for the period spent ($10.00 of $10.00 per 3600 s)",
            BUDGET_DEGRADED,
        ),
        (
            {"w": 12.5},
            ("device", "edge"),
            "skipped: budget for the period spent ($12.50 of $10.00 per 3600 s)",
            BUDGET_DEGRADED,
        ),
    ],
)
def test_budget(
    spent: dict[str, float], order: tuple[str, ...], cloud_reason: str, degraded: str | None
) -> None:
    p = policy({"w": workload(budget_usd_per_period=10, budget_period_s=3600)})
    r = route(p, RequestMeta("w", received_s=T0), spent_usd=spent)
    assert r.tiers == order
    assert reasons(r)["cloud"] == cloud_reason
    assert r.degraded == degraded


def test_budget_spent_on_a_cloud_only_workload_leaves_no_tier() -> None:
    p = policy({"w": workload("cloud", budget_usd_per_period=1)})
    r = route(p, RequestMeta("w", received_s=T0), spent_usd={"w": 1.0})
    assert r.tiers == ()
    assert r.degraded == BUDGET_DEGRADED
    assert "per 86400 s" in reasons(r)["cloud"]  # the default period is a day


def test_no_budget_means_no_limit() -> None:
    p = policy({"w": workload()})
    r = route(p, RequestMeta("w", received_s=T0), spent_usd={"w": 1e9})
    assert r.tiers == ("device", "edge", "cloud")


# --- off-peak deferral --------------------------------------------------------------------

SCHEDULE = {"off_peak_hours_utc": [2, 3], "spot_windows_utc": [[22, 24]]}


@pytest.mark.parametrize(
    ("at_s", "until_s", "reason"),
    [
        (T0 + 2.5 * HOUR_S, None, None),  # 02:30, off-peak
        (T0 + 22 * HOUR_S, None, None),  # 22:00 sharp, the spot window opens
        (
            T0 + 14 * HOUR_S + 300,
            T0 + 22 * HOUR_S,
            "deferrable: 14:05 UTC is outside the off-peak hours and spot windows; waiting"
            " 7 h 55 min for the spot window 22:00-00:00 UTC",
        ),
        (
            T0 + 4 * HOUR_S,
            T0 + 22 * HOUR_S,  # 04:00 sharp: the off-peak hours just closed
            "deferrable: 04:00 UTC is outside the off-peak hours and spot windows; waiting"
            " 18 h for the spot window 22:00-00:00 UTC",
        ),
        # Across midnight: from 00:30 to 02:00 the next day's first window.
        (
            T0 + DAY_S + 0.5 * HOUR_S,
            T0 + DAY_S + 2 * HOUR_S,
            "deferrable: 00:30 UTC is outside the off-peak hours and spot windows; waiting"
            " 1 h 30 min for the off-peak hour 02:00-03:00 UTC",
        ),
    ],
)
def test_off_peak_deferral(at_s: float, until_s: float | None, reason: str | None) -> None:
    p = policy({"w": workload(urgency="deferrable")}, price_schedule=SCHEDULE)
    r = route(p, RequestMeta("w", received_s=at_s))
    assert r.defer_until_s == until_s
    assert r.defer_reason == reason
    assert r.tiers == ("device", "edge", "cloud")


def test_spot_window_across_midnight() -> None:
    p = policy(
        {"w": workload(urgency="deferrable")}, price_schedule={"spot_windows_utc": [[22, 6]]}
    )
    assert route(p, RequestMeta("w", received_s=T0 + 5.99 * HOUR_S)).defer_until_s is None
    assert route(p, RequestMeta("w", received_s=T0 + 23 * HOUR_S)).defer_until_s is None
    r = route(p, RequestMeta("w", received_s=T0 + 6 * HOUR_S))
    assert r.defer_until_s == T0 + 22 * HOUR_S
    assert r.defer_reason is not None
    assert "spot window 22:00-06:00 UTC" in r.defer_reason


@pytest.mark.parametrize(
    ("workloads", "meta", "schedule", "deferred"),
    [
        ({"w": workload()}, RequestMeta("w"), SCHEDULE, False),  # interactive
        ({"w": workload()}, RequestMeta("w", urgency="deferrable"), SCHEDULE, True),
        (
            {"w": workload(urgency="deferrable")},
            RequestMeta("w", urgency="interactive"),
            SCHEDULE,
            False,
        ),
        ({"w": workload(urgency="deferrable")}, RequestMeta("w"), None, False),  # no schedule
        # No cloud tier left to save money on: run now.
        (
            {"w": workload(urgency="deferrable", privacy="personal")},
            RequestMeta("w"),
            SCHEDULE,
            False,
        ),
        # The next window (22:00) opens after the deadline (14:00 + 1 h): run now.
        (
            {"w": workload(urgency="deferrable")},
            RequestMeta("w", deadline_ms=3_600_000),
            SCHEDULE,
            False,
        ),
        (
            {"w": workload(urgency="deferrable")},
            RequestMeta("w", deadline_ms=12 * 3_600_000),
            SCHEDULE,
            True,
        ),
    ],
)
def test_when_deferral_applies(
    workloads: dict[str, Any],
    meta: RequestMeta,
    schedule: dict[str, Any] | None,
    deferred: bool,
) -> None:
    top = {} if schedule is None else {"price_schedule": schedule}
    p = policy(workloads, **top)
    at = RequestMeta(
        meta.workload,
        meta.privacy,
        meta.residency,
        meta.deadline_ms,
        meta.urgency,
        received_s=T0 + 14 * HOUR_S,
    )
    r = route(p, at)
    assert (r.defer_until_s is not None) == deferred
    assert (r.defer_reason is not None) == deferred


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_next_window_is_the_first_cheap_hour_after_now(now_s: float) -> None:
    p = policy(
        {"w": workload(urgency="deferrable")},
        price_schedule={"off_peak_hours_utc": [1, 13], "spot_windows_utc": [[20, 3]]},
    )
    cheap = {1, 13, 20, 21, 22, 23, 0, 2}
    r = route(p, RequestMeta("w", received_s=now_s))
    hour = int(now_s % DAY_S // HOUR_S)
    if hour in cheap:
        assert r.defer_until_s is None
        return
    assert r.defer_until_s is not None
    assert now_s < r.defer_until_s <= now_s + DAY_S
    assert r.defer_until_s % HOUR_S == 0
    assert int(r.defer_until_s % DAY_S // HOUR_S) in cheap
    between = range(int(now_s // HOUR_S) + 1, int(r.defer_until_s // HOUR_S))
    assert all(h % 24 not in cheap for h in between)


# --- purity, speed, explanation -----------------------------------------------------------


def test_policy_reads_no_clock_and_no_randomness(monkeypatch: pytest.MonkeyPatch) -> None:
    p = policy({"w": workload(urgency="deferrable")}, price_schedule=SCHEDULE)
    meta = RequestMeta("w", deadline_ms=10 * 3_600_000, received_s=T0 + 14 * HOUR_S)
    first = route(p, meta)

    def forbidden(*_: object) -> float:
        raise AssertionError("the policy read a clock or a random source")

    for name in ("time", "monotonic", "perf_counter"):
        monkeypatch.setattr(time, name, forbidden)
    monkeypatch.setattr(random, "random", forbidden)
    assert route(p, meta) == first
    assert first.defer_until_s == T0 + 22 * HOUR_S


def test_route_is_fast() -> None:
    p = policy({"w": workload(deadline_ms=500, budget_usd_per_period=10)})
    states = {n: TierState(n, p99_ms=10.0) for n in ("device", "edge", "cloud")}
    meta = RequestMeta("w", privacy="public", received_s=T0)
    spent = {"w": 1.0}

    def call() -> Route:
        return p.route(meta, now_s=T0 + 0.01, tiers=states, spent_usd=spent)

    per_call_s = min(timeit.repeat(call, number=2000, repeat=5)) / 2000
    assert per_call_s < 50e-6, f"{per_call_s * 1e6:.1f} us per route()"


def test_explain_lists_every_tier_and_the_outcome() -> None:
    p = policy(
        {"w": workload(budget_usd_per_period=5, urgency="deferrable")}, price_schedule=SCHEDULE
    )
    r = route(
        p,
        RequestMeta("w", privacy="personal", received_s=T0 + 14 * HOUR_S),
        tiers={"edge": TierState("edge", breaker_open=True)},
        spent_usd={"w": 6.0},
    )
    assert explain(r) == (
        "route for workload 'w': device\n"
        "  device  kept\n"
        "  edge    skipped: breaker open\n"
        "  cloud   skipped: privacy 'personal' (narrowed by the request) may not leave site"
        " 's1' (cloud tier in region 'r1')\n"
    ).rstrip("\n")
    r = route(p, RequestMeta("w", received_s=T0 + 14 * HOUR_S), spent_usd={"w": 6.0})
    assert explain(r).splitlines()[-1] == f"degraded: {BUDGET_DEGRADED}"
    r = route(p, RequestMeta("w", received_s=T0 + 14 * HOUR_S))
    assert explain(r).splitlines()[-1] == (
        "deferred until 2023-11-15 22:00 UTC: deferrable: 14:00 UTC is outside the off-peak"
        " hours and spot windows; waiting 8 h for the spot window 22:00-00:00 UTC"
    )
    empty = Route("w", (), (TierDecision("cloud", False, "skipped: breaker open"),))
    assert explain(empty).splitlines()[0] == "route for workload 'w': no tier"


def test_route_explain_on_the_example_plan() -> None:
    route_, text = route_explain(
        EXAMPLE,
        "digits-personal",
        privacy="public",
        deadline_ms=100,
        now_s=T0 + 14 * HOUR_S,
        tiers={"edge": TierState("edge", p99_ms=90.0)},
    )
    assert route_.tiers == ("device",)
    lines = text.splitlines()
    assert lines[:5] == [
        "request at 2023-11-15 14:00 UTC: privacy 'personal' (asked 'public'; the workload's"
        " 'personal' holds), residency 'site' (workload default), urgency 'interactive'"
        " (workload default), deadline 100 ms",
        "route for workload 'digits-personal': device",
        "  device  kept: rtt 0 ms (no p99 observed yet) <= 100 ms left of the deadline",
        "  edge    skipped: p99 90 ms + rtt 20 ms > 100 ms left of the deadline",
        "  cloud   skipped: privacy 'personal' (the request's 'public' cannot widen it) may not"
        " leave site 'store-1' (cloud tier in region 'us-east')",
    ]
    # then what each stage reads its scores from (the plan names no output: picked)
    assert lines[5] == "stages:"
    assert lines[6].startswith("  device  margin < 0.5 escalates; reads 'probabilities' or")
    assert "GET http://127.0.0.1:8001/v2/models/small when the gateway starts" in lines[7]
    assert lines[8] == "  cloud   reads no scores (the last stage answers)"


def test_route_explain_refuses_unknown_workload() -> None:
    with pytest.raises(RouteError, match="known: digits, digits-batch, digits-personal"):
        route_explain(EXAMPLE, "letters", now_s=T0)


def test_policy_needs_a_plan() -> None:
    with pytest.raises(ConfigError, match="plan: expected a Plan"):
        Policy({"tiers": {}})  # type: ignore[arg-type]


# --- causes and reusable routes ----------------------------------------------------------


@pytest.mark.parametrize(
    ("meta", "tiers", "spent", "cause"),
    [
        (RequestMeta("w", privacy="sensitive"), {}, {}, "privacy"),
        (RequestMeta("w", residency="device"), {}, {}, "residency"),
        (RequestMeta("w"), {"cloud": TierState("cloud", breaker_open=True)}, {}, "breaker_open"),
        (RequestMeta("w"), {"cloud": TierState("cloud", healthy=False)}, {}, "unhealthy"),
        (RequestMeta("w"), {"cloud": TierState("cloud", thermal_offload=True)}, {},
         "thermal_offload"),
        (RequestMeta("w"), {}, {"w": 10.0}, "budget"),
        (RequestMeta("w", deadline_ms=30, received_s=T0), {}, {}, "deadline"),
    ],
)  # fmt: skip
def test_every_skip_names_its_cause(
    meta: RequestMeta, tiers: dict[str, TierState], spent: dict[str, float], cause: str
) -> None:
    p = policy({"w": workload(budget_usd_per_period=10)})
    r = route(p, meta, now_s=T0, tiers=tiers, spent_usd=spent)
    cloud = {d.tier: d for d in r.decisions}["cloud"]
    assert (cloud.kept, cloud.cause) == (False, cause)
    assert all(d.cause is None for d in r.decisions if d.kept)
    assert cloud == TierDecision("cloud", False, cloud.reason)  # cause is not compared


def test_route_keys_say_when_a_route_can_be_reused() -> None:
    p = policy(
        {
            "w": workload(budget_usd_per_period=10),
            "timed": workload(deadline_ms=500),
            "later": workload(urgency="deferrable"),
        },
        price_schedule={"off_peak_hours_utc": [3]},
    )
    key = p.route_key(RequestMeta("w"), spent_usd={})
    assert key == p.route_key(RequestMeta("w", received_s=T0), spent_usd={"w": 9.99})
    assert key != p.route_key(RequestMeta("w"), spent_usd={"w": 10.0})  # budget spent
    assert key != p.route_key(RequestMeta("w", privacy="sensitive"), spent_usd={})
    assert p.route_key(RequestMeta("w", deadline_ms=100), spent_usd={}) is None
    assert p.route_key(RequestMeta("timed"), spent_usd={}) is None  # the workload's deadline
    assert p.route_key(RequestMeta("later"), spent_usd={}) is None  # waits for cheap hours
    assert p.route_key(RequestMeta("later", urgency="interactive"), spent_usd={}) is not None
    assert p.route_key(RequestMeta("nope"), spent_usd={}) is None


def test_a_request_that_says_nothing_reuses_its_workloads_route_until_a_flag_changes() -> None:
    p = policy({"free": workload(), "w": workload(budget_usd_per_period=10)})
    assert p.spend_free("free")
    assert not p.spend_free("w")  # its route changes when its budget is spent
    assert not p.spend_free("nope")
    ledger = SpendLedger()
    flags = {"cloud": False}

    def states() -> dict[str, TierState]:
        return {"cloud": TierState("cloud", breaker_open=flags["cloud"])}

    cache = RouteCache(p, ledger, {}, states)
    plain = cache.get(RequestMeta("free"), T0, 0.0)
    assert cache.get(RequestMeta("free", received_s=T0 + 5), T0 + 5, 1.0) is plain
    assert "cloud" in plain.tiers
    narrowed = cache.get(RequestMeta("free", privacy="sensitive"), T0, 1.0)
    assert narrowed is not plain
    assert "cloud" not in narrowed.tiers
    flags["cloud"] = True  # a breaker opened: the router resets the cache
    cache.reset()
    assert "cloud" not in cache.get(RequestMeta("free"), T0, 2.0).tiers
    # a workload with a budget is looked up by its spend every time
    before = cache.get(RequestMeta("w"), T0, 3.0)
    ledger.add("w", 10.0, T0)
    after = cache.get(RequestMeta("w"), T0, 4.0)
    assert before is not after
    assert after.degraded


@given(
    now_s=st.floats(min_value=T0, max_value=T0 + 30 * DAY_S),
    p99s=st.lists(st.none() | st.floats(min_value=0, max_value=1e4), min_size=5, max_size=5),
    breaker=st.booleans(),
    spent=st.floats(min_value=0, max_value=20),
)
def test_equal_route_keys_give_equal_routes(
    now_s: float, p99s: list[float | None], breaker: bool, spent: float
) -> None:
    """Whatever the clock and the observed latencies, a key fixes the route (the health
    flags held equal, as the router holds them between its resets)."""
    p = policy({"w": workload(budget_usd_per_period=10)})
    meta = RequestMeta("w", received_s=T0)
    flags = {"cloud": TierState("cloud", breaker_open=breaker)}
    seen = {n: TierState(n, p99_ms=v, breaker_open=n == "cloud" and breaker)
            for n, v in zip(ALL, p99s, strict=True)}  # fmt: skip
    key = p.route_key(meta, spent_usd={"w": spent})
    assert key is not None
    first = p.route(meta, now_s=T0, tiers=flags, spent_usd={"w": spent})
    again = p.route(meta, now_s=now_s, tiers=seen, spent_usd={"w": spent})
    assert first == again
