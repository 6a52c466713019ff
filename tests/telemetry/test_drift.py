"""Drift statistics against scipy and hand values, references on disk, monitor windows."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson
import pytest
from scipy import stats

from tierwise.errors import ConfigError
from tierwise.telemetry.drift import (
    CONFIDENCE_BINS,
    DriftMonitor,
    DriftSettings,
    Reference,
    ks_pvalue,
    ks_statistic,
    psi,
    reference_from_outputs,
)
from tierwise.telemetry.drift_reference import MAX_REFERENCE_BYTES


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _data(rows: int, seed: int, *, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``[rows, 4, 3]`` and three-class probabilities that depend on them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, size=(rows, 4, 3)).astype(np.float32)
    logits = x.mean(axis=2) @ np.array([[2.0, 0.0, -2.0]] * 4).reshape(4, 3) / 4
    return x, _softmax(3 * logits + rng.normal(0, 0.5, size=(rows, 3)))


def _reference(rows: int = 2000, seed: int = 0) -> Reference:
    x, p = _data(rows, seed)
    return reference_from_outputs(x, p, output="p", input_name="x")


def test_psi_matches_hand_computation() -> None:
    e, a = np.array([0.5, 0.3, 0.2]), np.array([0.3, 0.3, 0.4])
    hand = (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.4 - 0.2) * math.log(0.4 / 0.2)
    assert psi(e, a) == pytest.approx(hand)
    assert psi(e * 10, a * 7) == pytest.approx(hand)  # counts or shares alike
    assert psi(e, e) == 0.0
    # an empty bin counts as a share of 1e-4 instead of making the score infinite
    empty = psi(np.array([1.0, 0.0]), np.array([0.5, 0.5]))
    assert empty == pytest.approx(
        (0.5 - 1.0) * math.log(0.5 / 1.0) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    )


@pytest.mark.parametrize(
    ("expected", "actual"),
    [([1, 2], [1, 2, 3]), ([], []), ([0, 0], [1, 1]), ([1, -1], [1, 1])],
)
def test_psi_refuses_bad_histograms(expected: list[float], actual: list[float]) -> None:
    with pytest.raises(ConfigError):
        psi(np.array(expected, dtype=float), np.array(actual, dtype=float))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ks_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, size=300)
    b = rng.normal(0.15 * seed, 1.1, size=170)
    b[:20] = a[:20]  # ties across the samples
    expected = stats.ks_2samp(a, b, method="asymp")
    assert ks_statistic(a, b) == pytest.approx(expected.statistic, abs=1e-12)
    # the asymptotic p-value with Stephens' correction is close to scipy's
    p = ks_pvalue(ks_statistic(a, b), a.size, b.size)
    assert p == pytest.approx(expected.pvalue, abs=0.02, rel=0.25)


def test_ks_pvalue_against_kolmogorov_distribution() -> None:
    for lam in (0.3, 0.6, 1.0, 1.2, 1.5, 2.0):
        n = 10_000_000  # the small-sample correction vanishes
        d = lam / math.sqrt(n / 2)
        assert ks_pvalue(d, n, n) == pytest.approx(stats.kstwobign.sf(lam), abs=1e-4)
    assert ks_pvalue(0.0, 10, 10) == 1.0
    assert ks_pvalue(1.0, 500, 500) < 1e-12
    with pytest.raises(ConfigError):
        ks_statistic(np.array([]), np.array([1.0]))


def test_reference_summarises_inputs_and_scores() -> None:
    x, p = _data(500, 3)
    ref = reference_from_outputs(x, p, output="p", input_name="x")
    assert ref.rows == 500
    assert ref.classes == 3
    assert ref.output == "p"
    assert sum(ref.class_counts) == 500
    assert list(ref.class_counts) == np.bincount(p.argmax(axis=1), minlength=3).tolist()
    assert len(ref.confidence_histogram) == CONFIDENCE_BINS
    assert sum(ref.confidence_histogram) == 500
    assert min(ref.confidence) >= 1 / 3 - 1e-6
    assert max(ref.confidence) <= 1.0
    means = np.sort(x.reshape(500, -1).mean(axis=1))
    assert np.allclose(ref.input_mean, means, rtol=1e-5, atol=1e-6)


def test_logit_references_read_softmax_confidence() -> None:
    x, p = _data(300, 4)
    logits = np.log(p.astype(np.float64)) + 7.0  # softmax of these is p again
    from_logits = reference_from_outputs(x, logits, output="z", input_name="x", score_kind="logits")
    from_p = reference_from_outputs(x, p, output="z", input_name="x")
    assert from_logits.class_counts == from_p.class_counts
    assert np.allclose(from_logits.confidence, from_p.confidence, atol=1e-5)


def test_reference_round_trip(tmp_path: Path) -> None:
    ref = _reference(5000)
    assert len(ref.confidence) == len(ref.input_mean) == 2000  # capped sample
    path = tmp_path / "reference.json"
    ref.save(path)
    again = Reference.load(path)
    assert again == ref
    assert again.to_json() == path.read_bytes()
    input_only = reference_from_outputs(_data(50, 1)[0], None, output=None, input_name="x")
    input_only.save(path)
    assert Reference.load(path) == input_only
    assert Reference.load(path).output is None


def _broken(doc: dict[str, object], path: list[str], value: object) -> dict[str, object]:
    node: dict[str, object] = doc
    for key in path[:-1]:
        node = node[key]  # type: ignore[assignment]
    node[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("where", "value", "named"),
    [
        (["format"], 2, "format"),
        (["rows"], 0, "rows"),
        (["input", "mean"], [], "input.mean"),
        (["input", "mean"], "1.0", "input.mean"),
        (["input", "std"], [1e309], "input"),
        (["output", "confidence"], [1.5], "output"),
        (["output", "class_counts"], [1], "output.class_counts"),
        (["output", "class_counts"], [-1, 2], "output"),
        (["output", "confidence_histogram"], [1, 2], "output.confidence_histogram"),
        (["output", "scores"], "votes", "output.scores"),
        (["extra"], 1, "extra"),
    ],
)
def test_malformed_references_name_the_field(
    tmp_path: Path, where: list[str], value: object, named: str
) -> None:
    doc = _broken(_reference(200).to_dict(), where, value)
    path = tmp_path / "reference.json"
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(ConfigError) as caught:
        Reference.load(path)
    assert str(path) in str(caught.value)
    assert named in str(caught.value)


def test_unreadable_oversized_and_non_json_references(tmp_path: Path) -> None:
    path = tmp_path / "reference.json"
    with pytest.raises(ConfigError, match="readable"):
        Reference.load(path)
    path.write_bytes(b"{not json")
    with pytest.raises(ConfigError, match="JSON"):
        Reference.load(path)
    path.write_bytes(b" " * (MAX_REFERENCE_BYTES + 1))
    with pytest.raises(ConfigError, match="at most"):
        Reference.load(path)
    path.write_bytes(b'{"format": 1, "rows": 1, "input": {"mean": [NaN]}}')
    with pytest.raises(ConfigError):
        Reference.load(path)


def test_reference_from_outputs_refuses_bad_tensors() -> None:
    x, p = _data(20, 0)
    with pytest.raises(ConfigError, match="scores"):
        reference_from_outputs(x, p[:10], output="p", input_name="x")
    with pytest.raises(ConfigError, match="scores"):
        reference_from_outputs(x, p[:, :1], output="p", input_name="x")
    with pytest.raises(ConfigError, match="inputs"):
        reference_from_outputs(np.array(["a", "b"]), None, output=None, input_name="x")
    for empty in (x[:0], np.zeros((20, 0, 3), np.float32)):
        with pytest.raises(ConfigError, match="at least one row of values"):
            reference_from_outputs(empty, None, output=None, input_name="x")
    with pytest.raises(ConfigError, match="output"):
        reference_from_outputs(x, p, output=None, input_name="x")
    with pytest.raises(ConfigError, match="score_kind"):
        reference_from_outputs(x, p, output="p", input_name="x", score_kind="votes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "settings",
    [
        {"psi_warn": 0.3, "psi_alert": 0.2},
        {"ks_warn": 0.001, "ks_alert": 0.01},
        {"window_rows": 100, "step_rows": 101},
        {"window_rows": 100, "min_rows": 200},
        {"window_rows": 5},
    ],
)
def test_drift_settings_refuse_inconsistent_values(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"step_rows|min_rows|psi_alert|ks_alert|window_rows"):
        DriftSettings(**settings)  # type: ignore[arg-type]


def test_defaults_are_evidently_thresholds() -> None:
    s = DriftSettings()
    assert (s.psi_warn, s.psi_alert) == (0.1, 0.2)


def test_monitor_windows_and_steps() -> None:
    monitor = DriftMonitor(_reference(), DriftSettings(window_rows=100, step_rows=30))
    x, p = _data(400, 11)
    assert monitor.level() == 0
    assert monitor.scores() == {}
    assert monitor.window_rows == 0
    monitor.observe({"x": x[:60]}, {"p": p[:60]})
    assert monitor.windows == 0
    assert monitor.window_rows == 60
    monitor.observe({"x": x[60:100]}, {"p": p[60:100]})
    assert monitor.windows == 1
    assert monitor.window_rows == 100
    assert set(monitor.scores()) == {
        ("confidence", "psi"),
        ("confidence", "ks"),
        ("class", "psi"),
        ("input_mean", "ks"),
        ("input_std", "ks"),
    }
    assert set(monitor.pvalues()) == {k for k in monitor.scores() if k[1] == "ks"}
    monitor.observe({"x": x[100:120]}, {"p": p[100:120]})
    assert monitor.windows == 1  # 20 rows since the last comparison, step is 30
    monitor.observe({"x": x[120:400]}, {"p": p[120:400]})  # a batch larger than the window
    assert monitor.windows == 2
    assert monitor.window_rows == 100
    # the window holds the last 100 rows: its KS statistic is the one of those rows
    ref = np.asarray(monitor.reference.input_mean)
    last = x[300:400].reshape(100, -1).mean(axis=1)
    assert monitor.scores()["input_mean", "ks"] == pytest.approx(ks_statistic(ref, last))
    assert monitor.level() < 2
    assert monitor.alerts == 0


def test_monitor_ring_buffer_keeps_the_latest_rows() -> None:
    monitor = DriftMonitor(_reference(), DriftSettings(window_rows=50, step_rows=7))
    x, p = _data(333, 12)
    for start in range(0, 333, 7):  # batches that wrap around the buffer
        monitor.observe({"x": x[start : start + 7]}, {"p": p[start : start + 7]})
    ref = np.asarray(monitor.reference.input_std)
    last = x[329 - 50 : 329].reshape(50, -1).std(axis=1)  # the last comparison, at row 329
    assert monitor.scores()["input_std", "ks"] == pytest.approx(ks_statistic(ref, last))


def test_monitor_alerts_on_shifted_inputs_and_class_mix() -> None:
    monitor = DriftMonitor(_reference(), DriftSettings(window_rows=200))
    x, p = _data(200, 21, shift=0.8)
    monitor.observe({"x": x}, {"p": p})
    assert monitor.level() == 2
    assert monitor.alerts == 1
    assert monitor.scores()["input_mean", "ks"] > 0.3
    assert monitor.scores()["class", "psi"] >= 0.2
    # only the class mix changes: rows of one predicted class
    x, p = _data(3000, 22)
    keep = p.argmax(axis=1) == 0
    mixed = DriftMonitor(_reference(), DriftSettings(window_rows=200))
    mixed.observe({"x": x[keep][:200]}, {"p": p[keep][:200]})
    assert mixed.level() == 2
    assert mixed.scores()["class", "psi"] > 1.0


def test_monitor_ignores_batches_that_do_not_fit() -> None:
    monitor = DriftMonitor(_reference(), DriftSettings(window_rows=20))
    x, p = _data(20, 5)
    monitor.observe({"other": x}, {"p": p})
    monitor.observe({"x": x}, {"q": p})
    monitor.observe({"x": x}, {"p": p[:, :2]})
    monitor.observe({"x": x}, {"p": p.astype(np.int64)})
    monitor.observe({"x": x[:0]}, {"p": p[:0]})  # no rows
    monitor.observe({"x": np.zeros((0, 4, 3, 5), np.float32)}, {"p": p[:0]})
    monitor.observe({"x": np.zeros((20, 0), np.float32)}, {"p": p})  # rows without values
    assert monitor.ignored_batches == 7
    assert monitor.window_rows == 0
    monitor.observe({"x": x}, {"p": p})
    assert monitor.window_rows == 20
    assert monitor.windows == 1


def test_input_only_monitor() -> None:
    x, _ = _data(1000, 0)
    ref = reference_from_outputs(x, None, output=None, input_name="x")
    monitor = DriftMonitor(ref, DriftSettings(window_rows=100))
    monitor.observe({"x": _data(100, 9, shift=1.0)[0]}, {})
    assert set(monitor.scores()) == {("input_mean", "ks"), ("input_std", "ks")}
    assert monitor.level() == 2
    with pytest.raises(ConfigError):
        DriftMonitor("reference.json")  # type: ignore[arg-type]
