"""`tierwise bench endpoint` and `tierwise bench profile` as a user runs them: a real
`tierwise serve` on loopback, real processes and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from server_helpers import ServerProcess, server_process
from tierwise.bench import MeasureSettings, load_profiles, profile_endpoint
from tierwise.errors import TierError
from tierwise.zoo import load_eval, load_zoo

FAST = MeasureSettings(batch_sizes=(1, 4), runs=15, warmup_runs=2, max_seconds_per_batch=0.2)


def tierwise(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierwise", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def served(shared_zoo_dir: Path) -> Iterator[ServerProcess]:
    with server_process(shared_zoo_dir) as server:
        yield server


async def test_endpoint_profile_includes_the_network_and_the_accuracy(
    served: ServerProcess, shared_zoo_dir: Path
) -> None:
    profile = await profile_endpoint(
        served.url, "small", settings=FAST, concurrency=2, eval_data=load_eval(shared_zoo_dir)
    )
    assert profile.source == "endpoint"
    assert profile.includes_network
    assert profile.url == served.url
    assert profile.variant == "small"
    assert profile.accuracy == pytest.approx(load_zoo(shared_zoo_dir).variant("small").accuracy)
    assert [b.batch_size for b in profile.batches] == [1, 4]
    # a loopback HTTP round trip costs far more than the model itself
    assert profile.single.p50_ms > 0.05
    assert profile.batches[1].throughput_per_s > 0


async def test_unknown_model_is_a_tier_error(served: ServerProcess) -> None:
    with pytest.raises(TierError, match="HTTP 404"):
        await profile_endpoint(served.url, "ghost", settings=FAST)


def test_cli_endpoint_writes_profiles(served: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "edge.json"
    result = tierwise(
        "bench", "endpoint", served.url, "--model", "tiny", "--variant", "tiny",
        "--batch", "1", "--runs", "10", "--max-seconds", "0.2", "--tier", "store-edge",
        "-o", str(out), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = load_profiles(out)
    assert written.tiers == ["store-edge"]
    assert written.settings.concurrency == 4
    assert json.loads(result.stdout)["profiles"][0]["provider"] == "remote"


def test_cli_profile_zoo(shared_zoo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "profiles.json"
    result = tierwise(
        "bench", "profile", "--zoo", str(shared_zoo_dir), "--batch", "1,8", "--runs", "5",
        "--max-seconds", "0.1", "--hardware", "ci", "-o", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    written = load_profiles(out)
    assert written.host.label == "ci"
    assert {p.variant for p in written.profiles} >= {"tiny", "small", "large"}


def test_cli_profile_model_files_with_eval(shared_zoo_dir: Path) -> None:
    result = tierwise(
        "bench", "profile", "--model", str(shared_zoo_dir / "large" / "1" / "model.onnx"),
        "--model", f"mini={shared_zoo_dir / 'tiny' / '1' / 'model.onnx'}",
        "--eval", str(shared_zoo_dir / "eval.npz"), "--batch", "1", "--runs", "5", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [p["variant"] for p in doc["profiles"]] == ["large", "mini"]
    assert all(p["accuracy"] > 0.8 for p in doc["profiles"])


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--batch", "1,x"], "--batch"),
        (["--batch", "0"], "--batch"),
        ([], "give either --zoo DIR or --model FILE"),
    ],
    ids=["not-a-number", "zero", "no-source"],
)
def test_cli_profile_bad_input_exits_2(args: list[str], needle: str, shared_zoo_dir: Path) -> None:
    extra = ["--zoo", str(shared_zoo_dir)] if args else []
    result = tierwise("bench", "profile", *extra, *args)
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
