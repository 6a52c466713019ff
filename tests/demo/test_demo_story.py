"""``tierwise demo`` end to end on a short replay: every step of the story runs once, the
second run skips the cached ones, and the report is there."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from server_helpers import free_port
from tierwise.demo import DemoSettings
from tierwise.errors import ConfigError

REQUESTS = 150


def tierwise(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierwise", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_the_story_runs_then_skips_what_is_cached(shared_zoo_dir: Path, tmp_path: Path) -> None:
    work = tmp_path / "demo"
    args = ("demo", "--zoo-dir", str(shared_zoo_dir), "--work-dir", str(work),
            "--requests", str(REQUESTS), "--json")  # fmt: skip
    first = tierwise(*args)
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    outcome = {s["step"]: s["outcome"] for s in doc["steps"]}
    assert list(outcome) == [
        "zoo", "profile", "calibrate", "plan", "tiers", "replay", "simulate", "report"
    ]  # fmt: skip
    assert outcome["zoo"] == "cached"  # the session's zoo is current
    assert {outcome[s] for s in ("profile", "calibrate", "plan", "tiers", "replay")} == {"ran"}

    routes = {r["workload"]: r for r in doc["replay"]}
    assert list(routes) == ["parcel-codes", "customs-forms", "parcel-codes-cloud-only"]
    plan, personal, cloud = routes.values()
    for route in routes.values():
        assert route["requests"] == REQUESTS
        assert route["degraded"] == 0
        assert sum(route["share"].values()) == pytest.approx(1.0)
    # the planned cascade answers most reads below the cloud, for less than cloud only
    # (the edge stage is named after its variant when the two workloads run different
    # variants there, which the measured profiles decide)
    assert re.fullmatch(r"belt-camera -> dock-edge(-[a-z0-9-]+)? -> gpu-pool", plan["route"])
    assert plan["share"]["device"] > 0.2
    assert plan["share"]["cloud"] < 0.2
    assert plan["usd_per_million"] < cloud["usd_per_million"]
    assert plan["accuracy"] >= cloud["accuracy"] - 0.05
    # personal data stays in the hub; cloud only is all cloud
    assert personal["share"]["cloud"] == 0.0
    assert cloud["share"] == {"device": 0.0, "edge": 0.0, "cloud": 1.0}
    # the tiers are reached through links with the plan's round trips
    live = yaml.safe_load((work / "live-plan.yaml").read_text())
    assert cloud["p50_ms"] >= live["tiers"]["cloud-only"]["rtt_p50_ms"]

    report = Path(doc["report"])
    assert report == work / "report" / "index.html"
    page = report.read_text()
    for png in ("matrix.png", "cost.png", "latency.png", "cascade.png", "simulation.png"):
        assert (report.parent / png).stat().st_size > 1000
        assert f'src="{png}"' in page
    assert "measured on loopback through links with the plan" in page
    # a bad day simulated: the cloud's link cut from 10:00 to 10:30 costs degraded answers
    day = json.loads((work / "simulation.json").read_text())
    assert day["scenario"] == "bad-day"
    hours = {h["hour"]: h for h in day["workloads"]["parcel-codes"]["by_hour"]}
    assert hours[10]["degraded"] > 0
    assert hours[9]["degraded"] == 0
    assert hours[10]["share"]["cloud"] < hours[9]["share"]["cloud"]
    assert "scenario bad-day" in page
    assert doc["fidelity"] is None  # only when asked
    assert [row[0] for row in doc["summary"]["rows"]] == [
        "parcel-codes",
        "customs-forms",
        "cloud only",
    ]

    # the second run, as a person sees it: cached steps skipped, the table, the report
    second = tierwise(*args[:-1])
    assert second.returncode == 0, second.stderr
    lines = second.stdout.strip().splitlines()
    assert lines[-1].startswith("device tier in the browser: tierwise demo --serve, then open")
    assert lines[-2] == f"report: {report}"
    assert lines[-3].startswith("cached steps skipped: zoo, profile, calibrate, plan; total time")
    assert "cloud only" in second.stdout
    # an output gone or edited is no longer current: only its step runs again
    (work / "plan.yaml").unlink()
    calibration = work / "calibration.json"
    calibration.write_text(calibration.read_text() + " ")
    third = tierwise(*args)
    assert third.returncode == 0, third.stderr
    outcome = {s["step"]: s["outcome"] for s in json.loads(third.stdout)["steps"]}
    assert outcome["profile"] == "cached"
    assert outcome["calibrate"] == outcome["plan"] == "ran"


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ConfigError, match="requests"):
        DemoSettings(requests=0)
    with pytest.raises(ConfigError, match="port_base"):
        DemoSettings(port_base=80)
    bad = tierwise("demo", "--requests", "0")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr


def test_settings_errors_say_what_was_expected_and_got() -> None:
    with pytest.raises(ConfigError) as info:
        DemoSettings(requests=0)
    assert str(info.value) == "requests: expected a whole number >= 1, or None for every row, got 0"
    with pytest.raises(ConfigError) as info:
        DemoSettings(target_accuracy=0.0)
    assert str(info.value) == "target_accuracy: expected > 0.0, got 0.0"
    assert DemoSettings(requests=5).requests == 5


def test_demo_serve_keeps_the_fleet_up_behind_the_device_page(
    shared_zoo_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tierwise", "demo", "--zoo-dir", str(shared_zoo_dir),
         "--work-dir", str(tmp_path / "demo"), "--requests", str(REQUESTS), "--no-network",
         "--serve", "--serve-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = ""
        deadline = time.monotonic() + 300
        while not line.startswith("device page:"):
            assert time.monotonic() < deadline, "the demo never served its device page"
            line = process.stdout.readline()
            assert line or process.poll() is None, "the demo exited before serving"
        url = f"http://127.0.0.1:{port}"
        assert line.split()[2] == f"{url}/device/"
        index = httpx.get(f"{url}/v2/device").json()
        assert index["samples"] is True
        assert "parcel-codes" in index["workloads"]  # its first stage: the belt cameras
        samples = httpx.get(f"{url}/device/samples.json").json()
        assert len(samples["parcel-codes"]["rows"]) == 200
        assert len(samples["parcel-codes"]["rows"][0]) == 64
        settings = httpx.get(f"{url}/v2/models/parcel-codes/device").json()
        assert settings["tier"].startswith("belt-camera")
        assert settings["escalate_to"][-1] == "gpu-pool"
        cloud_only = httpx.get(f"{url}/v2/models/parcel-codes-cloud-only/device")
        assert cloud_only.status_code == 404
        assert "has no device model" in cloud_only.json()["error"]
        assert httpx.get(f"{url}/device/").status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        if process.stdout is not None:
            process.stdout.close()
    assert process.returncode in (0, 130, -signal.SIGINT)


def test_demo_serve_on_a_busy_port_says_so_before_the_story(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        ran = tierwise("demo", "--work-dir", str(tmp_path / "demo"), "--serve",
                       "--serve-port", str(port))  # fmt: skip
    assert ran.returncode == 2
    assert f"port {port}" in ran.stderr
    assert "--serve-port" in ran.stderr
    assert not (tmp_path / "demo").exists()  # nothing of the story ran
