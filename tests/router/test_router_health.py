from __future__ import annotations

import pytest

from tierwise.errors import ConfigError
from tierwise.router.health import BreakerSettings, CircuitBreaker, LatencyWindow


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_then_half_open_probe_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerSettings(consecutive_failures=3, open_s=5), clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.state == "half_open"
    assert breaker.allow()  # the one probe
    assert not breaker.allow()  # no second probe while the first is out
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.allow()


def test_failed_probe_reopens() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerSettings(consecutive_failures=1, open_s=1), clock=clock)
    breaker.record_failure()
    clock.now += 1.5
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    clock.now += 0.5
    assert not breaker.allow()


def test_error_rate_opens_without_a_failure_streak() -> None:
    breaker = CircuitBreaker(
        BreakerSettings(consecutive_failures=100, error_rate=0.5, window=10, min_calls=10),
        clock=Clock(),
    )
    for i in range(9):  # alternate: never two failures in a row
        breaker.record_failure() if i % 2 else breaker.record_success()
    assert breaker.state == "closed"  # only 9 calls: below min_calls
    breaker.record_failure()  # 10 calls, 5 failures: 50%
    assert breaker.state == "open"


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"consecutive_failures": 0}, "consecutive_failures"),
        ({"error_rate": 0}, "error_rate"),
        ({"window": 5, "min_calls": 6}, "min_calls"),
        ({"open_s": 0}, "open_s"),
        ({"half_open_probes": 0}, "half_open_probes"),
    ],
)
def test_settings_name_the_bad_parameter(kwargs: dict[str, float], parameter: str) -> None:
    with pytest.raises(ConfigError, match=parameter):
        BreakerSettings(**kwargs)  # type: ignore[arg-type]


def test_latency_window_percentiles() -> None:
    window = LatencyWindow(size=100)
    assert window.p99_ms is None
    for value in range(1, 101):
        window.add(float(value))
    assert window.percentile(50) == 50.0
    assert window.percentile(99) == 99.0
    assert window.p99_ms == 99.0
    for _ in range(100):  # the window keeps only the newest samples
        window.add(1000.0)
    assert window.p99_ms == 1000.0
    assert len(window) == 100
