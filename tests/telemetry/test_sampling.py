"""Telemetry sampling: rates, privacy filtering, stable hashes, bounded sinks."""

from __future__ import annotations

import hashlib
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tierwise.errors import ConfigError
from tierwise.telemetry.sampling import JsonlSink, Sampler, SampleSink, SqliteSink


class ListSink(SampleSink):
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def write(self, record: Any) -> bool:
        self.records.append(dict(record))
        return True


def x_input(value: float = 0.5) -> dict[str, np.ndarray]:
    return {"x": np.full((2, 3), value, dtype=np.float32)}


def offer_many(sampler: Sampler, workload: str, n: int, privacy: str = "public") -> int:
    trace = {"workload": workload, "tier": "device"}
    return sum(sampler.offer(trace, x_input(), None, privacy) for _ in range(n))


@pytest.mark.parametrize("rate", [0.01, 0.1, 0.5])
def test_rates_are_honoured(rate: float) -> None:
    n = 20_000
    sampler = Sampler({"w": rate}, sink=ListSink(), rng=random.Random(7))
    kept = offer_many(sampler, "w", n)
    sd = math.sqrt(n * rate * (1 - rate))
    assert abs(kept - n * rate) <= 4 * sd  # binomial, 4 standard deviations
    assert sampler.offered == n
    assert sampler.sampled == kept


def test_rates_are_per_workload_and_default_to_zero() -> None:
    sink = ListSink()
    sampler = Sampler({"all": 1.0, "none": 0.0}, sink=sink, rng=random.Random(1))
    assert offer_many(sampler, "all", 50) == 50
    assert offer_many(sampler, "none", 50) == 0
    assert offer_many(sampler, "unplanned", 50) == 0
    assert {r["workload"] for r in sink.records} == {"all"}


def test_deterministic_with_seeded_rng() -> None:
    def decisions(seed: int) -> list[bool]:
        sampler = Sampler({"w": 0.3}, sink=ListSink(), rng=random.Random(seed))
        return [sampler.offer({"workload": "w"}, x_input(), None, "public") for _ in range(200)]

    assert decisions(5) == decisions(5)
    assert decisions(5) != decisions(6)


@pytest.mark.parametrize("sink_kind", ["jsonl", "sqlite"])
def test_sensitive_never_written(tmp_path: Path, sink_kind: str) -> None:
    path = tmp_path / f"samples.{sink_kind}"
    sink: SampleSink = (
        JsonlSink(path, max_bytes=1_000_000) if sink_kind == "jsonl" else SqliteSink(path)
    )
    rng = random.Random(3)
    state = rng.getstate()
    sampler = Sampler({"w": 1.0}, allow_raw={"w": True}, sink=sink, rng=rng)
    secret = {"x": np.array([123456.789], dtype=np.float64)}
    for _ in range(100):
        assert sampler.offer({"workload": "w", "note": "ssn"}, secret, secret, "sensitive") is False
    assert rng.getstate() == state  # not even a random draw
    sink.close()
    if sink_kind == "jsonl":
        assert path.read_bytes() == b""
    else:
        assert SqliteSink.read(path) == []
    digest = hashlib.sha256(secret["x"].tobytes()).hexdigest()
    for file in tmp_path.iterdir():
        data = file.read_bytes()
        assert digest.encode() not in data
        assert b"123456.789" not in data


def test_inputs_hashed_stably_and_raw_only_when_allowed() -> None:
    sink = ListSink()
    sampler = Sampler(
        {"hashed": 1.0, "raw": 1.0}, allow_raw={"raw": True}, sink=sink, rng=random.Random(0)
    )
    little = np.arange(6, dtype="<f4").reshape(2, 3)
    big = little.astype(">f4")  # same values, other byte order
    outputs = {"p": np.array([[0.9, 0.1]], dtype=np.float32)}
    sampler.offer({"workload": "hashed"}, {"x": little}, outputs, "personal")
    sampler.offer({"workload": "hashed"}, {"x": big}, outputs, "personal")
    sampler.offer({"workload": "raw"}, {"x": little}, outputs, "public")
    hashed_a, hashed_b, raw = sink.records
    expected = hashlib.sha256(little.tobytes()).hexdigest()
    assert hashed_a["inputs"]["x"] == {"datatype": "FP32", "shape": [2, 3], "sha256": expected}
    assert hashed_b["inputs"]["x"] == hashed_a["inputs"]["x"]
    assert "data" not in hashed_a["outputs"]["p"]
    assert hashed_a["raw"] is False
    assert raw["inputs"]["x"]["data"] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert "sha256" not in raw["inputs"]["x"]
    assert raw["raw"] is True
    # a fresh sampler (another run) gives the same digest
    other = Sampler({"hashed": 1.0}, sink=ListSink(), rng=random.Random(9))
    assert other.digest(little) == expected


def test_bytes_tensors_and_keyed_hash() -> None:
    sink = ListSink()
    sampler = Sampler({"w": 1.0}, sink=sink, rng=random.Random(0), hash_key=b"site-secret")
    text = np.array([b"alice", b"bob"], dtype=object)
    sampler.offer({"workload": "w"}, {"t": text}, None, "personal")
    entry = sink.records[0]["inputs"]["t"]
    assert entry["datatype"] == "BYTES"
    assert "sha256" not in entry
    plain = Sampler({"w": 1.0}, sink=ListSink(), rng=random.Random(0)).digest(text)
    assert entry["hmac_sha256"] != plain
    assert entry["hmac_sha256"] == sampler.digest(text)


def test_secrets_dropped_from_trace(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    sink = JsonlSink(path, max_bytes=100_000)
    sampler = Sampler({"w": 1.0}, sink=sink, rng=random.Random(0))
    trace = {
        "workload": "w",
        "Authorization": "Bearer tok-AAA",
        "auth": {"user": "u", "pass": "p"},
        "request": {"headers": {"authorization": "Basic BBB", "accept": "json"}},
        "tiers": [{"tier": "edge", "latency_ms": 3.5, "api_key": "CCC"}],
        "payload": b"raw-bytes-DDD",
    }
    assert sampler.offer(trace, x_input(), None, "public")
    sink.close()
    text = path.read_text()
    for secret in ("tok-AAA", "Basic BBB", "CCC", "raw-bytes-DDD", '"pass"'):
        assert secret not in text
    [record] = JsonlSink.read(path)
    assert record["trace"]["request"]["headers"] == {"accept": "json"}
    assert record["trace"]["tiers"] == [{"tier": "edge", "latency_ms": 3.5}]
    assert set(record["trace"]["payload"]) == {"sha256"}


def test_jsonl_stops_at_bound(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    sink = JsonlSink(path, max_bytes=2_000, backups=0)
    sampler = Sampler({"w": 1.0}, sink=sink, rng=random.Random(0))
    written = offer_many(sampler, "w", 100)
    assert 0 < written < 100
    assert sink.dropped == 100 - written
    assert path.stat().st_size <= 2_000
    assert len(JsonlSink.read(path)) == written
    assert list(tmp_path.iterdir()) == [path]


def test_jsonl_rotates_within_bound(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    sink = JsonlSink(path, max_bytes=1_500, backups=2)
    sampler = Sampler({"w": 1.0}, sink=sink, rng=random.Random(0))
    assert offer_many(sampler, "w", 200) == 200
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["s.jsonl", "s.jsonl.1", "s.jsonl.2"]
    assert all((tmp_path / f).stat().st_size <= 1_500 for f in files)
    # the newest records survive, in order, across the rotated files
    kept = [r for f in reversed(files) for r in JsonlSink.read(tmp_path / f)]
    stamps = [r["ts_s"] for r in kept]
    assert stamps == sorted(stamps)
    assert len(kept) < 200


def test_jsonl_reader_skips_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    sink = JsonlSink(path, max_bytes=10_000)
    assert sink.write({"a": 1})
    with path.open("ab") as f:
        f.write(b'{"b": 2')  # a writer caught mid-line
    assert JsonlSink.read(path) == [{"a": 1}]
    sink.close()


def test_sqlite_sink_readable_while_written_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    sink = SqliteSink(path, max_rows=30)
    sampler = Sampler({"a": 1.0, "b": 1.0}, sink=sink, rng=random.Random(0))
    assert offer_many(sampler, "a", 10) == 10
    assert len(SqliteSink.read(path)) == 10  # a reader while the writer is open
    assert offer_many(sampler, "b", 30) == 20
    assert sink.dropped == 10
    assert len(SqliteSink.read(path, workload="b")) == 20
    sink.close()
    reopened = SqliteSink(path, max_rows=30)
    assert reopened.write({"workload": "a"}) is False  # the bound holds across restarts
    reopened.close()


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [({"rates": {"w": 1.5}}, "rates"), ({"rates": {"w": -0.1}}, "rates")],
)
def test_bad_rates_name_the_parameter(kwargs: Any, parameter: str) -> None:
    with pytest.raises(ConfigError, match=parameter):
        Sampler(sink=ListSink(), rng=random.Random(0), **kwargs)


def test_bad_offer_arguments() -> None:
    sampler = Sampler({"w": 1.0}, sink=ListSink(), rng=random.Random(0))
    with pytest.raises(ConfigError, match="privacy"):
        sampler.offer({"workload": "w"}, x_input(), None, "secret")
    with pytest.raises(ConfigError, match="workload"):
        sampler.offer({}, x_input(), None, "public")
    with pytest.raises(ConfigError, match="max_bytes"):
        JsonlSink("unused.jsonl", max_bytes=0)
