"""The router's tunables are one settings model: validated where it is built (the field,
the bound and the value in one line) and read once by the router."""

from __future__ import annotations

from pathlib import Path

import pytest

from onnx_models import scale_model
from scripted_tiers import Scripted, plan
from tierwise.errors import ConfigError
from tierwise.router import BreakerSettings, RouterSettings, build_router
from tierwise.router.policy import Policy
from tierwise.router.router import Router, Stage
from tierwise.router.tiers import LocalTier
from tierwise.runtime import OnnxBackend


def test_defaults() -> None:
    settings = RouterSettings()
    assert settings.hedge_after_ms is None
    assert settings.breaker == BreakerSettings()
    assert settings.latency_window_samples == 256


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hedge_after_ms": 0}, "hedge_after_ms: expected > 0.0, got 0"),
        ({"latency_window_samples": 0}, "latency_window_samples: expected >= 1, got 0"),
        ({"breaker": {"open_s": -1}}, "breaker.open_s: expected > 0.0, got -1"),
        (
            {"breaker": {"window": 5, "min_calls": 6}},
            "breaker.min_calls: expected between 1 and window=5, got 6",
        ),
        ({"breaker": {"error_rate": 1.5}}, "breaker.error_rate: expected <= 1.0, got 1.5"),
        ({"hedge_ms": 5}, "hedge_ms: expected a known setting (did you mean 'hedge_after_ms'?)"),
    ],
)
def test_errors_name_the_field_the_bound_and_the_value(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        RouterSettings(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_breaker_settings_built_alone_name_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        BreakerSettings(window=5, min_calls=6)
    assert (info.value.parameter, info.value.got) == ("min_calls", 6)


def test_the_router_takes_its_settings_once(tmp_path: Path) -> None:
    the_plan = plan(scale_model(tmp_path / "model.onnx", 1.0))
    breaker = BreakerSettings(consecutive_failures=2, open_s=60.0)
    settings = RouterSettings(hedge_after_ms=40, breaker=breaker, latency_window_samples=32)
    device = LocalTier("device", OnnxBackend("device", tmp_path / "model.onnx"), kind="device")
    edge, cloud = Scripted("edge", "edge"), Scripted("cloud", "cloud")
    tiers = {"device": device, "edge": edge, "cloud": cloud}
    router = Router(Policy(the_plan), tiers, {"w": [Stage("device"), Stage("cloud")]}, settings)
    assert router.settings is settings
    assert router.hedge_after_ms == 40
    assert set(router.breakers) == {"edge", "cloud"}  # remote tiers only
    assert all(b.settings is breaker for b in router.breakers.values())
    assert {w.size for w in router.latency.values()} == {32}


def test_build_router_hands_its_settings_to_the_router(tmp_path: Path) -> None:
    the_plan = plan(scale_model(tmp_path / "model.onnx", 1.0))
    settings = RouterSettings(hedge_after_ms=25)
    router = build_router(the_plan, settings=settings)
    assert router.settings is settings
    assert build_router(the_plan).settings == RouterSettings()
