"""The router reaching a tier server over TLS on loopback: a plan's ``tls`` (CA, client
certificate, server name) is what the router checks the tier with; a tier whose
handshake fails is a failed tier like any unreachable one, with a reason that says what
failed, and the cascade falls back to the next tier."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from onnx_models import scale_model
from security_helpers import TestCA as CA
from security_helpers import find_secret
from server_helpers import RunningServer, free_port, running_server
from tierwise.errors import ConfigError
from tierwise.planfile.load import load_plan
from tierwise.router.build import build_tiers
from tierwise.router.client import Client
from tierwise.security.tls import TlsServerSettings
from tierwise.server import ServerSettings

X = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)


def repo(root: Path, factor: float) -> Path:
    """A model repository whose model ``scale`` answers ``y = x * factor``."""
    scale_model(root / "scale" / "1" / "model.onnx", factor)
    return root


@contextmanager
def tls_tier(
    root: Path, ca: CA, name: str = "server", *, mutual: bool = False, **issue: Any
) -> Iterator[str]:
    """A tier server (``y = x * 2``) on loopback speaking TLS with a certificate ``ca``
    issued; its https:// URL."""
    pem = ca.issue(name, **issue)
    tls = TlsServerSettings(cert=pem.cert, key=pem.key, client_ca=ca.ca_file if mutual else None)
    with running_server(ServerSettings(model_repo=repo(root / name, 2.0), tls=tls)) as server:
        yield server.url


@pytest.fixture(scope="module")
def backup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A plain-HTTP tier server (``y = x * 3``): the cascade's second tier."""
    root = repo(tmp_path_factory.mktemp("backup"), 3.0)
    with running_server(ServerSettings(model_repo=root)) as server:
        yield server


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return CA(tmp_path / "ca")


def write_plan(folder: Path, secure_url: str, backup_url: str, tls: dict[str, Any] | None) -> Path:
    secure: dict[str, Any] = {
        "kind": "cloud", "region": "us-east", "url": secure_url, "model": "scale",
        "rtt_p50_ms": 1, "rtt_p99_ms": 5, "cost_usd_per_inference": 0.0001, "timeout_s": 5,
    }  # fmt: skip
    if tls is not None:
        secure["tls"] = {k: str(v) if isinstance(v, Path) else v for k, v in tls.items()}
    plan = {
        "version": 1,
        "tiers": {
            "secure": secure,
            "backup": {
                "kind": "cloud",
                "region": "us-east",
                "url": backup_url,
                "model": "scale",
                "rtt_p50_ms": 1,
                "rtt_p99_ms": 5,
                "cost_usd_per_inference": 0.0002,
                "timeout_s": 5,
            },
        },
        "workloads": {
            "w": {
                "privacy": "public",
                "cascade": [
                    {"tier": "secure", "rule": "max_prob", "threshold": 0.0},
                    {"tier": "backup"},
                ],
            }
        },
    }
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False), encoding="utf-8")
    return path


async def answered_by_secure(plan: Path) -> None:
    async with Client(plan) as client:
        for _ in range(3):  # later calls ride the kept-alive TLS connection
            result = await client.infer({"x": X}, workload="w")
            assert result.tier == "secure"
            assert not result.degraded
            np.testing.assert_allclose(result.outputs["y"], X * 2.0)


async def fallback_reason(plan: Path) -> str:
    """Route one request that the TLS tier fails; the reason its attempt records."""
    async with Client(plan) as client:
        result = await client.infer({"x": X}, workload="w")
    assert result.tier == "backup"
    np.testing.assert_allclose(result.outputs["y"], X * 3.0)
    assert not result.degraded  # the last stage answered: the plan's own fallback
    assert [a.tier for a in result.trace.attempts] == ["secure", "backup"]
    first = result.trace.attempts[0]
    assert first.tier == "secure"
    assert first.outcome == "error"
    # a certificate problem is not a partition: it does not heal when the network does
    assert first.cause == "error"
    assert find_secret(first.reason) is None
    return first.reason


async def test_a_tls_tier_checked_against_the_plans_ca_answers(
    ca: CA, tmp_path: Path, backup: RunningServer
) -> None:
    with tls_tier(tmp_path, ca) as url:
        await answered_by_secure(write_plan(tmp_path, url, backup.url, {"ca": ca.ca_file}))


async def test_tls_files_are_relative_to_the_plan(
    ca: CA, tmp_path: Path, backup: RunningServer
) -> None:
    with tls_tier(tmp_path, ca) as url:
        plan = write_plan(tmp_path, url, backup.url, {"ca": "ca/tierwise-test-CA.crt"})
        loaded = load_plan(plan)
        tls = loaded.tiers["secure"].tls
        assert tls is not None
        assert tls.ca == ca.ca_file.resolve()
        await answered_by_secure(plan)


async def test_mutual_tls_with_the_routers_certificate_answers(
    ca: CA, tmp_path: Path, backup: RunningServer
) -> None:
    router = ca.issue("router", server=False)
    tls = {"ca": ca.ca_file, "cert": router.cert, "key": router.key}
    with tls_tier(tmp_path, ca, mutual=True) as url:
        await answered_by_secure(write_plan(tmp_path, url, backup.url, tls))


async def test_mutual_tls_without_a_certificate_falls_back_saying_why(
    ca: CA, tmp_path: Path, backup: RunningServer
) -> None:
    with tls_tier(tmp_path, ca, mutual=True) as url:
        reason = await fallback_reason(write_plan(tmp_path, url, backup.url, {"ca": ca.ca_file}))
    assert "refused the TLS handshake" in reason
    assert "tls.cert and tls.key" in reason


async def test_an_unknown_ca_falls_back_saying_why(
    ca: CA, tmp_path: Path, backup: RunningServer
) -> None:
    other = CA(tmp_path / "other", name="other CA")
    with tls_tier(tmp_path, ca) as url:
        reason = await fallback_reason(write_plan(tmp_path, url, backup.url, {"ca": other.ca_file}))
    assert "certificate verify failed: unable to get local issuer certificate" in reason
    assert "tls.ca" in reason


async def test_no_tls_settings_means_the_system_store_which_does_not_know_the_test_ca(
    ca: CA, tmp_path: Path, backup: RunningServer
) -> None:
    with tls_tier(tmp_path, ca) as url:
        reason = await fallback_reason(write_plan(tmp_path, url, backup.url, None))
    assert "certificate verify failed: unable to get local issuer certificate" in reason


async def test_an_expired_server_certificate_falls_back_saying_why(
    ca: CA, tmp_path: Path, backup: RunningServer
) -> None:
    with tls_tier(tmp_path, ca, "old", expired=True) as url:
        reason = await fallback_reason(write_plan(tmp_path, url, backup.url, {"ca": ca.ca_file}))
    assert "certificate verify failed: certificate has expired" in reason


async def test_a_hostname_mismatch_falls_back_until_server_name_names_the_certificate(
    ca: CA, tmp_path: Path, backup: RunningServer
) -> None:
    with tls_tier(tmp_path, ca, "named", hosts=("tier.internal",)) as url:
        reason = await fallback_reason(write_plan(tmp_path, url, backup.url, {"ca": ca.ca_file}))
        named = {"ca": ca.ca_file, "server_name": "tier.internal"}
        await answered_by_secure(write_plan(tmp_path, url, backup.url, named))
    assert "not valid for '127.0.0.1'" in reason
    assert "set tls.server_name" in reason


async def test_when_every_tier_fails_the_tls_reason_reaches_the_caller(
    ca: CA, tmp_path: Path
) -> None:
    from tierwise.errors import NoRouteError

    other = CA(tmp_path / "other", name="other CA")
    with tls_tier(tmp_path, ca) as url:
        plan = write_plan(tmp_path, url, f"http://127.0.0.1:{free_port()}", {"ca": other.ca_file})
        async with Client(plan) as client:
            with pytest.raises(NoRouteError) as info:
                await client.infer({"x": X}, workload="w")
    assert "unable to get local issuer certificate" in str(info.value)


async def test_insecure_skip_verify_reaches_an_untrusted_server_and_warns_once(
    ca: CA, tmp_path: Path, backup: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    stranger = CA(tmp_path / "other", name="other CA")
    with (
        caplog.at_level(logging.WARNING, logger="tierwise.security"),
        tls_tier(tmp_path, stranger, hosts=("elsewhere.example",)) as url,
    ):
        await answered_by_secure(
            write_plan(tmp_path, url, backup.url, {"insecure_skip_verify": True})
        )
    warnings = [r for r in caplog.records if "insecure_skip_verify" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "tier 'secure'" in warnings[0].getMessage()


def test_a_tls_file_that_does_not_load_is_a_config_error_naming_the_tier(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    plan = write_plan(tmp_path, "https://127.0.0.1:1", "http://127.0.0.1:2", {"ca": bad})
    with pytest.raises(ConfigError) as info:
        build_tiers(load_plan(plan), env={})
    assert info.value.parameter == "tiers.secure.tls.ca"
    assert str(bad) in str(info.value)


def test_plain_http_tiers_get_no_tls_context(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, "http://127.0.0.1:1", "http://127.0.0.1:2", None)
    for tier in build_tiers(load_plan(plan), env={}).values():
        transport = getattr(tier, "_client").transport  # noqa: B009 -- the tier's own client
        assert getattr(transport, "_ssl_context") is None  # noqa: B009
