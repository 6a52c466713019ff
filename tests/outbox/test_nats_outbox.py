"""The JetStream outbox against a real nats-server pair (a hub and a leaf node, each with
its own JetStream domain) and a real tier server: work published on the leaf during a
partition reaches the tier once after the link heals, a publisher killed with SIGKILL
mid-batch and restarted loses and duplicates nothing, and bad settings are refused."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import nats
import pytest
from nats_helpers import (
    NatsPair,
    infer_body,
    model_runs,
    nats_pair,
    publisher_argv,
    tier_deliver,
)

from server_helpers import RunningServer
from tierwise.errors import ConfigError, OutboxError, PayloadTooLargeError
from tierwise.outbox import (
    NatsDrainer,
    NatsOutbox,
    NatsOutboxSettings,
    OutboxItem,
    nats_outbox_settings,
)
from tierwise.outbox.nats_store import item_id_for

TESTS = Path(__file__).resolve().parents[1]


def _edge(pair: NatsPair, **extra: object) -> NatsOutboxSettings:
    return NatsOutboxSettings.model_validate(
        {"url": pair.leaf_url, "domain": pair.leaf_domain, **extra}
    )


def _hub(pair: NatsPair, **extra: object) -> NatsOutboxSettings:
    return NatsOutboxSettings.model_validate(
        {"url": pair.hub_url, "hub_domain": pair.hub_domain,
         "source_domains": [pair.leaf_domain], "fetch_timeout_s": 0.2,
         "backoff_base_s": 0.05, **extra}
    )  # fmt: skip


async def _until(predicate: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(predicate):  # type: ignore[arg-type]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


async def _stream_messages(url: str, domain: str, stream: str) -> int:
    client = await nats.connect(url)
    try:
        info = await client.jetstream(domain=domain).stream_info(stream)
        return int(info.state.messages)
    finally:
        await client.close()


# -- settings -----------------------------------------------------------------------------


def test_settings_from_an_outbox_mapping() -> None:
    settings = nats_outbox_settings(
        {"backend": "nats", "url": "nats://hub:4222", "stream": "EDGE", "domain": "site-7"}
    )
    assert (settings.url, settings.stream, settings.domain) == ("nats://hub:4222", "EDGE", "site-7")
    # each domain publishes under its own token; the hub consumes them all
    assert settings.item_subject("cloud", "ab12") == "tierwise.outbox.site-7.cloud.ab12"
    assert settings.tier_filter("cloud") == "tierwise.outbox.local.cloud.>"  # no leaves
    leaves = settings.model_copy(update={"source_domains": ("a", "b")})
    assert leaves.tier_filter("cloud") == "tierwise.outbox.*.cloud.>"
    assert not settings.at_hub
    assert NatsOutboxSettings(url="nats://hub", domain="hub", hub_domain="hub").at_hub
    assert settings.duplicate_window_s == 120.0  # JetStream's default window


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"url": "http://hub:4222"}, "url"),
        ({"url": "nats://hub", "stream": "has.dot"}, "stream"),
        ({"url": "nats://hub", "domain": "a b"}, "domain"),
        ({"url": "nats://hub", "subject_prefix": "a.>"}, "subject_prefix"),
        ({"url": "nats://hub", "consume": True, "domain": "edge1"}, "hub_domain"),
        ({"url": "nats://hub", "max_deliver": 1}, "max_deliver"),
        ({"url": "nats://hub", "max_ack_pending": 0}, "max_ack_pending"),
        ({"url": "nats://hub", "max_msg_bytes": 10}, "max_msg_bytes"),
        ({"url": "nats://hub", "source_domains": ["e1", "e1"]}, "source_domains"),
        ({"url": "nats://hub", "backend": "sqlite"}, "backend"),
        ({"url": "nats://hub", "stream_name": "X"}, "stream_name"),
        ({}, "url"),
    ],
)
def test_bad_settings_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field) as info:
        nats_outbox_settings(data, source="gateway.yaml outbox")
    assert info.value.parameter == "gateway.yaml outbox"
    assert info.value.status_code == 400


async def _no_delivery(item: OutboxItem) -> bytes:
    raise AssertionError(f"nothing should be delivered, got {item.id}")


def test_errors_never_show_credentials() -> None:
    settings = NatsOutboxSettings(url="nats://svc:s3cret@hub.example:4222")
    assert settings.display_url == "nats://hub.example:4222"
    assert "s3cret" not in NatsOutboxSettings(url="tls://u:p@[::1]:4222").display_url


async def test_unreachable_server_with_credentials_names_it_without_them() -> None:
    settings = NatsOutboxSettings(url="nats://svc:s3cret@127.0.0.1:1", connect_timeout_s=0.5)
    with pytest.raises(OutboxError, match="cannot connect") as info:
        await NatsOutbox.open(settings)
    assert "s3cret" not in str(info.value)
    assert "127.0.0.1:1" in str(info.value)


def test_bad_tier_and_settings_type() -> None:
    settings = NatsOutboxSettings(url="nats://hub")
    with pytest.raises(ConfigError, match="tier"):
        settings.subject("a.*")
    with pytest.raises(ConfigError, match="settings"):
        NatsDrainer({"url": "nats://hub"}, "cloud", _no_delivery)  # type: ignore[arg-type]


def test_item_ids_follow_the_key() -> None:
    assert item_id_for("cloud", "k1") == item_id_for("cloud", "k1")
    assert item_id_for("cloud", "k1") != item_id_for("edge", "k1")
    # two edges' same key are two items (results are kept by id)
    assert item_id_for("cloud", "k1", "shop-1") != item_id_for("cloud", "k1", "shop-2")
    assert item_id_for("cloud", None) != item_id_for("cloud", None)


async def test_unreachable_server_is_an_outbox_error() -> None:
    settings = NatsOutboxSettings(url="nats://127.0.0.1:1", connect_timeout_s=0.5)
    with pytest.raises(OutboxError, match="cannot connect"):
        await NatsOutbox.open(settings)


# -- against a real hub and leaf ----------------------------------------------------------


@pytest.mark.slow
async def test_put_bounds_and_dedups_retries(pair: NatsPair) -> None:
    async with await NatsOutbox.open(_edge(pair, max_msg_bytes=4096, max_msgs=3)) as box:
        first = await box.put("cloud", b"a", idempotency_key="k1")
        assert await box.put("cloud", b"a-again", idempotency_key="k1") == first
        await box.put("cloud", b"b")
        assert await box.pending_count() == 2  # the retry stored nothing
        with pytest.raises(PayloadTooLargeError):
            await box.put("cloud", b"x" * 4096)
        with pytest.raises(ConfigError, match="idempotency_key"):
            await box.put("cloud", b"c", idempotency_key="")
        with pytest.raises(ConfigError, match="meta"):
            await box.put("cloud", b"c", meta={"x": object()})
        await box.put("cloud", b"c")
        with pytest.raises(OutboxError, match="full") as info:
            await box.put("cloud", b"d")
        assert info.value.status_code == 503


@pytest.mark.slow
async def test_partitioned_leaf_delivers_once_after_heal(
    pair: NatsPair, tier: RunningServer
) -> None:
    count = 20
    url = f"{tier.url}/v2/models/scale/infer"
    pair.relay.cut()
    async with httpx.AsyncClient(timeout=10) as client:
        real = tier_deliver(client, url)
        lost_acks: set[str] = set()

        async def deliver(item: OutboxItem) -> bytes:
            answer = await real(item)
            if item.meta["i"] % 5 == 0 and item.id not in lost_acks:
                lost_acks.add(item.id)  # the tier acted, the deliverer "died" before its ack
                raise httpx.ConnectError("lost after the tier answered")
            return answer

        drainer = NatsDrainer(_hub(pair), "cloud", deliver)
        async with drainer, await NatsOutbox.open(_edge(pair)) as box:
            ids = [
                await box.put("cloud", infer_body(i), idempotency_key=f"key-{i}", meta={"i": i})
                for i in range(count)
            ]
            assert len(set(ids)) == count
            await asyncio.sleep(1.0)
            # stored on the leaf, nothing crossed the cut link
            assert await box.pending_count() == count
            assert await _stream_messages(pair.hub_url, pair.hub_domain, "TIERWISE_OUTBOX_HUB") == 0
            assert model_runs(tier.url) == 0
            pair.relay.heal()
            await _until(lambda: drainer.delivered == count)
            await asyncio.sleep(0.5)  # nothing more arrives later
    assert model_runs(tier.url) == count
    assert drainer.delivered == count
    assert len(lost_acks) == count // 5
    assert drainer.redelivered >= count // 5


@pytest.mark.slow
async def test_publisher_killed_mid_batch_loses_and_duplicates_nothing(
    pair: NatsPair, tier: RunningServer, tmp_path: Path
) -> None:
    count = 300
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS / "outbox")])}
    argv = publisher_argv(pair.leaf_url, pair.leaf_domain, count)
    process = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE, env=env)
    assert process.stdout is not None
    confirmed: list[str] = []
    while len(confirmed) < 40:
        line = (await process.stdout.readline()).decode()
        assert line, "publisher exited early"
        if line.startswith("put "):
            confirmed.append(line.split()[1])
    process.send_signal(signal.SIGKILL)
    await asyncio.wait_for(process.wait(), 10)
    first_run = await _stream_messages(pair.leaf_url, pair.leaf_domain, "TIERWISE_OUTBOX")
    assert len(confirmed) <= first_run < count  # killed mid-batch, every confirmed put kept
    # the restarted publisher puts the whole batch again
    rerun = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE, env=env)
    out, _ = await asyncio.wait_for(rerun.communicate(), 120)
    assert rerun.returncode == 0
    assert out.decode().splitlines()[-1] == "finished"
    assert await _stream_messages(pair.leaf_url, pair.leaf_domain, "TIERWISE_OUTBOX") == count
    async with httpx.AsyncClient(timeout=10) as client:
        drainer = NatsDrainer(
            _hub(pair), "cloud", tier_deliver(client, f"{tier.url}/v2/models/scale/infer")
        )
        async with drainer:
            await _until(lambda: drainer.delivered == count, timeout_s=60)
            await asyncio.sleep(0.5)
    assert await _stream_messages(pair.hub_url, pair.hub_domain, "TIERWISE_OUTBOX_HUB") == count
    assert model_runs(tier.url) == count
    assert drainer.delivered == count
    assert drainer.redelivered == 0


@pytest.mark.parametrize("ci", ["", "true"])
def test_missing_nats_server_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no nats-server here
    monkeypatch.setenv("CI", ci)
    outcome = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(outcome, match="apt-get install nats-server"), nats_pair(tmp_path / "n"):
        pass
