"""The cascade end to end on loopback: the device's tiny model in-process, the small model
on an edge tier server, the large one on a cloud tier server, real HTTP in between."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cascade_helpers import THRESHOLD, write_plan
from server_helpers import RunningServer, free_port
from tierwise.errors import RouteError
from tierwise.planfile.load import load_plan
from tierwise.router.client import Client
from tierwise.zoo import load_eval


@pytest.fixture
def plan_path(
    shared_zoo_dir: Path, tier_servers: tuple[RunningServer, RunningServer], tmp_path: Path
) -> Path:
    edge, cloud = tier_servers
    return write_plan(tmp_path / "plan.yaml", shared_zoo_dir, edge.url, cloud.url)


async def test_confident_answers_stay_on_device_the_rest_escalate(
    plan_path: Path, shared_zoo_dir: Path
) -> None:
    x, y = load_eval(shared_zoo_dir)
    tiers: list[str] = []
    correct = 0
    async with Client(plan_path) as client:
        for image, label in zip(x[:120], y[:120], strict=True):
            result = await client.infer({"image": image[None]}, workload="digits")
            trace = result.trace
            assert result.tier == trace.answered_by
            assert not result.degraded
            first = trace.attempts[0]
            assert first.tier == "device"
            if result.tier == "device":
                assert first.confidence is not None
                assert first.confidence >= THRESHOLD
            else:
                assert first.outcome == "escalated"
                assert first.reason.startswith("confidence ")
                assert [a.tier for a in trace.attempts] == ["device", "edge", "cloud"][
                    : len(trace.attempts)
                ]
            assert trace.cost_usd == pytest.approx(
                {"device": 0.0, "edge": 0.00001, "cloud": 0.00021}[result.tier]
            )
            tiers.append(result.tier or "")
            correct += int(result.outputs["label"][0] == label)
    assert {"device", "edge", "cloud"} <= set(tiers), tiers
    assert correct / 120 > 0.85  # better than tiny alone (~74%)


async def test_sensitive_data_never_leaves_the_device(
    plan_path: Path, shared_zoo_dir: Path
) -> None:
    x, _ = load_eval(shared_zoo_dir)
    async with Client(plan_path) as client:
        for image in x[:40]:
            result = await client.infer({"image": image[None]}, workload="private-digits")
            assert result.tier == "device"
            assert [a.tier for a in result.trace.attempts] == ["device"]
        widened = await client.infer({"image": x[:1]}, workload="private-digits", privacy="public")
        assert widened.tier == "device"  # a request cannot widen its workload's privacy
        with pytest.raises(RouteError, match="workload"):
            await client.infer({"image": x[:1]}, workload="nope")


async def test_cloud_down_degrades_to_the_edge_answer(
    shared_zoo_dir: Path, tier_servers: tuple[RunningServer, RunningServer], tmp_path: Path
) -> None:
    edge, _ = tier_servers
    dead = f"http://127.0.0.1:{free_port()}"
    plan = write_plan(tmp_path / "plan.yaml", shared_zoo_dir, edge.url, dead)
    x, _ = load_eval(shared_zoo_dir)
    degraded = []
    async with Client(plan) as client:
        for image in x[:150]:
            result = await client.infer({"image": image[None]}, workload="digits")
            if result.degraded:
                degraded.append(result)
        assert degraded, "no request needed the cloud"
        for result in degraded:
            assert result.tier in ("device", "edge")
            last = result.trace.attempts[-1]
            assert last.tier == "cloud"
            assert last.outcome in ("error", "skipped")
        reasons = [r.trace.attempts[-1].reason for r in degraded]
        assert any("ConnectionRefusedError" in r for r in reasons)
        states = client.router.tier_states()
        assert states["cloud"].breaker_open  # consecutive failures opened it
    assert load_plan(plan).tiers["cloud"].url == dead


async def test_traces_are_sampled_without_sensitive_inputs(
    plan_path: Path, shared_zoo_dir: Path, tmp_path: Path
) -> None:
    from tierwise.router.build import build_router
    from tierwise.telemetry.sampling import JsonlSink

    text = plan_path.read_text().replace("privacy: public", "privacy: public\n    sample_rate: 1.0")  # noqa: ASYNC240
    text = text.replace("privacy: sensitive", "privacy: sensitive\n    sample_rate: 1.0")
    plan_path.write_text(text)  # noqa: ASYNC240
    sink = JsonlSink(tmp_path / "samples.jsonl", max_bytes=10_000_000)
    plan = load_plan(plan_path)
    x, _ = load_eval(shared_zoo_dir)
    async with Client(plan, router=build_router(plan, samples=sink, seed=1)) as client:
        for image in x[:5]:
            await client.infer({"image": image[None]}, workload="digits")
            await client.infer({"image": image[None]}, workload="private-digits")
    sink.close()
    samples = JsonlSink.read(tmp_path / "samples.jsonl")
    assert [s["workload"] for s in samples] == ["digits"] * 5
    for sample in samples:
        image = sample["inputs"]["image"]
        assert "sha256" in str(image)  # hashed: the plan does not allow raw samples
        assert sample["trace"]["answered_by"] in ("device", "edge", "cloud")


async def test_killing_the_cloud_mid_run_degrades_interactive_requests(
    shared_zoo_dir: Path, tier_servers: tuple[RunningServer, RunningServer], tmp_path: Path
) -> None:
    import signal

    from cascade_helpers import model_repo
    from server_helpers import server_process

    edge, _ = tier_servers
    x, _ = load_eval(shared_zoo_dir)
    repo = model_repo(shared_zoo_dir, tmp_path, "large")
    with server_process(repo) as cloud:
        plan = write_plan(tmp_path / "plan.yaml", shared_zoo_dir, edge.url, cloud.url)
        async with Client(plan) as client:
            before = [await client.infer({"image": i[None]}, workload="digits") for i in x[:80]]
            assert any(r.tier == "cloud" for r in before)
            assert not any(r.degraded for r in before)
            cloud.process.send_signal(signal.SIGKILL)
            cloud.process.wait(timeout=10)
            after = [await client.infer({"image": i[None]}, workload="digits") for i in x[:80]]
    assert all(r.tier in ("device", "edge") for r in after)
    # the models are deterministic: what the cloud settled before the outage is degraded
    # after it (first for the failed calls, then for the open breaker), and what the
    # device or the edge settled on its own is the same ordinary answer
    causes = set()
    for was, now in zip(before, after, strict=True):
        if was.tier == "cloud":
            assert now.degraded, now.trace
            assert now.trace.reason.startswith(f"degraded ({now.degraded_reason}): cloud ")
            causes.add(now.degraded_reason)
        else:
            assert (now.tier, now.degraded) == (was.tier, False)
            np.testing.assert_array_equal(now.outputs["label"], was.outputs["label"])
    assert causes == {"partition", "breaker_open"}, causes
    assert client.router.fallbacks == {
        ("digits", tier, cause): sum(
            1 for r in after if (r.tier, r.degraded_reason) == (tier, cause)
        )
        for (_, tier, cause) in client.router.fallbacks
    }
    assert sum(client.router.fallbacks.values()) == sum(r.degraded for r in after)
