"""`bench endpoint` follows the same shape rules as `bench profile`, against a real
`tierwise serve` on loopback serving a model with symbolic height and width."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from bench_helpers import conv_pool_model, eval_file, tierwise

from server_helpers import ServerProcess, server_process
from tierwise.bench import EvalSet, MeasureSettings, TimedInput, load_profiles, profile_endpoint
from tierwise.errors import ConfigError

QUICK = ("--batch", "1,2", "--runs", "5", "--warmup", "1", "--max-seconds", "0.2")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    repo = tmp_path_factory.mktemp("shapes") / "repo"
    conv_pool_model(repo / "ocr" / "1" / "model.onnx")
    with server_process(repo) as server:
        yield server


def _requests(served: ServerProcess) -> float:
    """Inference requests the server has answered, by its /metrics."""
    text = httpx.get(f"{served.url}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('tierwise_requests_total{model="ocr"')
    )


def test_cli_refuses_without_a_shape(served: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "edge.json"
    before = _requests(served)
    result = tierwise("bench", "endpoint", served.url, "--model", "ocr", *QUICK, "-o", str(out))
    assert result.returncode == 2, result.stderr
    assert _requests(served) == before
    assert "Traceback" not in result.stderr
    # V2 metadata names no dimensions: they are given by axis
    assert "input 'x' [?, 3, ?, ?]" in result.stderr
    assert "axis 2, axis 3" in result.stderr
    assert "--input-shape x=3,<axis2>,<axis3>" in result.stderr
    assert not out.exists()


def test_cli_times_and_records_the_flag_shape(served: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "edge.json"
    result = tierwise(
        "bench", "endpoint", served.url, "--model", "ocr", "--input-shape", "x=3,24,40",
        *QUICK, "--tier", "store-edge", "-o", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "ocr timed at x [N, 3, 24, 40] (from --input-shape)" in result.stdout
    (profile,) = load_profiles(out).profiles
    assert profile.includes_network
    assert profile.inputs == [
        TimedInput(name="x", datatype="FP32", shape=[3, 24, 40], batched=True, source="flag")
    ]
    assert [b.batch_size for b in profile.batches] == [1, 2]


def test_cli_times_the_eval_samples_and_scores_them(served: ServerProcess, tmp_path: Path) -> None:
    data = eval_file(tmp_path / "eval.npz", 30, (3, 16, 24))
    result = tierwise(
        "bench", "endpoint", served.url, "--model", "ocr", "--eval", str(data), *QUICK, "--json"
    )
    assert result.returncode == 0, result.stderr
    (profile,) = json.loads(result.stdout)["profiles"]
    assert profile["inputs"] == [
        {"name": "x", "datatype": "FP32", "shape": [3, 16, 24], "batched": True, "source": "eval"}
    ]
    assert profile["accuracy"] is not None
    assert profile["eval_samples"] == 30


async def test_a_big_shape_times_slower_through_the_endpoint(served: ServerProcess) -> None:
    settings = MeasureSettings(batch_sizes=(1,), runs=30, warmup_runs=3, max_seconds_per_batch=1)
    timed = {}
    for side in (1, 160):
        profile = await profile_endpoint(
            served.url, "ocr", settings=settings, concurrency=1, input_shapes={"x": (3, side, side)}
        )
        timed[side] = profile.single.p50_ms
    # 25,600 pixels through two convolutions outweigh the loopback round trip
    assert timed[160] > 2 * timed[1], timed


async def test_a_bad_eval_set_is_refused_before_any_request(served: ServerProcess) -> None:
    bad = EvalSet({"x": np.zeros((3, 4, 8, 8), np.float32)})
    before = _requests(served)
    with pytest.raises(ConfigError, match=r"fit \[\?, 3, \?, \?\]"):
        await profile_endpoint(served.url, "ocr", eval_data=bad)
    assert _requests(served) == before
