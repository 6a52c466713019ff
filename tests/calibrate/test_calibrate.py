"""Calibration: hand-computed cascades, then the real zoo with figures recomputed here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import orjson
import pytest

from tierwise.calibrate.costs import spec_usd_per_inference
from tierwise.calibrate.sweep import (
    DEFAULT_USD_PER_INFERENCE,
    CalibrationResult,
    calibrate,
    calibrate_outputs,
    oracle_bound,
    threshold_grid,
)
from tierwise.errors import ConfigError
from tierwise.escalation.rules import make_rule
from tierwise.spec import load_spec
from tierwise.zoo import load_eval, load_zoo

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = ("tiny", "small", "large")
USD = (0.0, 3e-5, 2e-4)


@pytest.fixture(scope="session")
def zoo_dir(shared_zoo_dir: Path) -> Path:
    return shared_zoo_dir


@pytest.fixture(scope="module")
def result(zoo_dir: Path) -> CalibrationResult:
    return calibrate(zoo_dir, target_accuracy=0.995)


@pytest.fixture(scope="module")
def stage_probabilities(zoo_dir: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """Each variant's probabilities, computed here independently of calibrate()."""
    zoo = load_zoo(zoo_dir)
    x, y = load_eval(zoo_dir)
    probs = []
    for name in VARIANTS:
        session = ort.InferenceSession(
            str(zoo.model_path(name)), providers=["CPUExecutionProvider"]
        )
        probs.append(np.asarray(session.run(["probabilities"], {"image": x})[0]))
    return probs, y


# -- hand-made cascades ------------------------------------------------------------------


def two_stage() -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    # device confidences 0.9, 0.6, 0.7, 0.8; device right on rows 0, 1; cloud on 1, 2, 3
    small = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    large = np.array([[0.1, 0.9], [0.9, 0.1], [0.9, 0.1], [0.9, 0.1]])
    labels = np.array([0, 0, 0, 0])
    outputs = [{"probabilities": p, "label": p.argmax(1)} for p in (small, large)]
    return outputs, labels


def test_two_stage_by_hand() -> None:
    outputs, labels = two_stage()
    res = calibrate_outputs(
        outputs, labels, variants=["a", "b"], tiers=["edge", "cloud"], rules=["max_prob"],
        usd_per_inference={"edge": 1e-6, "cloud": 1e-5}, grid=np.array([0.0, 0.75, 0.85, 1.0]),
        target_accuracy=1.0,
    )  # fmt: skip
    sweep = res.rules["max_prob"].sweep
    # 0.0: nobody escalates, rows 0, 1 right; 0.75: rows 1, 2 escalate, 0-2 right;
    # 0.85: rows 1-3 escalate, all right; 1.0: everything escalates, rows 1-3 right
    assert sweep.correct.tolist() == [2, 3, 4, 3]
    np.testing.assert_allclose(sweep.escalation_rates[:, 0], [0.0, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(sweep.cost_usd_per_million, [1.0, 6.0, 8.5, 11.0])
    assert res.cloud_only.accuracy == 0.75
    assert res.cloud_only.cost_usd_per_million == 10.0
    chosen = res.rules["max_prob"].chosen
    # the target is relative to cloud-only (75%): 0.75 reaches it cheapest
    assert chosen is not None
    assert chosen.thresholds == (0.75,)
    # the oracle escalates rows 2 and 3 only: 1 + 0.5 x 10
    assert res.oracle.accuracy == 1.0
    assert res.oracle.cost_usd_per_million == pytest.approx(6.0)
    assert res.rules["max_prob"].oracle_savings_captured == pytest.approx(1.0)
    assert res.rules["max_prob"].fraction_of_cloud_cost == pytest.approx(0.6)
    assert sweep.cheapest(1.0) == sweep.setting(2)


def test_target_out_of_reach_chooses_nothing() -> None:
    outputs, labels = two_stage()
    outputs[0]["label"] = np.array([1, 1, 1, 1])  # the device is always wrong
    outputs[0]["probabilities"] = np.full((4, 2), 0.5)  # and never sure enough to stop
    res = calibrate_outputs(
        outputs, labels, variants=["a", "b"], tiers=["edge", "cloud"], target_accuracy=1.0,
        grid=np.array([0.0]),  # never escalating: the device alone
    )  # fmt: skip
    assert all(r.chosen is None for r in res.rules.values())
    assert res.to_dict()["rules"]["margin"]["reached_target"] is False


def test_oracle_by_hand() -> None:
    ok = [np.array([1, 0, 0, 0], bool), np.array([0, 1, 0, 0], bool), np.array([0, 0, 1, 0], bool)]
    bound = oracle_bound(ok, (1.0, 2.0, 4.0))
    # rows: stop at 0 (1), 1 (3), 2 (7), none right -> stays at 0 (1)
    assert bound.accuracy == 0.75
    assert bound.cost_usd_per_million == pytest.approx((1 + 3 + 7 + 1) / 4 * 1e6)
    assert bound.escalation_rates == (0.5, 0.25)


def test_callable_rule_calibrates() -> None:
    outputs, labels = two_stage()
    res = calibrate_outputs(
        outputs, labels, variants=["a", "b"], tiers=["edge", "cloud"],
        rules=[make_rule(lambda o: o["probabilities"][:, 0], name="first")],
        grid=np.array([0.0, 0.5]),
    )  # fmt: skip
    assert list(res.rules) == ["first"]


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"target_accuracy": 0.0}, "target_accuracy"),
        ({"target_accuracy": 1.5}, "target_accuracy"),
        ({"usd_per_inference": {"edge": 1.0}}, "usd_per_inference"),
        ({"usd_per_inference": {"edge": 1.0, "cloud": -1.0}}, "usd_per_inference"),
        ({"rules": ["nope"]}, "rule"),
        ({"grid": np.array([0.5, 2.0])}, "grid"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], parameter: str) -> None:
    outputs, labels = two_stage()
    with pytest.raises(ConfigError) as info:
        calibrate_outputs(outputs, labels, variants=["a", "b"], tiers=["edge", "cloud"], **kwargs)  # type: ignore[arg-type]
    assert info.value.parameter.startswith(parameter)


def test_one_stage_or_unknown_variant_is_refused(zoo_dir: Path) -> None:
    with pytest.raises(ConfigError, match="variants"):
        calibrate(zoo_dir, variants=["tiny"])
    with pytest.raises(ConfigError, match="huge"):
        calibrate(zoo_dir, variants=["tiny", "huge"])


def test_grid_is_sorted_unit_and_fine_near_one() -> None:
    grid = threshold_grid(101)
    assert grid[0] == 0.0
    assert grid[-1] == 1.0
    assert (np.diff(grid) > 0).all()
    assert (grid > 0.999).sum() >= 5
    with pytest.raises(ConfigError, match="steps"):
        threshold_grid(1)


# -- the real zoo ---------------------------------------------------------------------------


def test_curve_is_monotone_in_thresholds(result: CalibrationResult) -> None:
    n = threshold_grid().size
    for rule in result.rules.values():
        sweep = rule.sweep
        first = sweep.escalation_rates[:, 0].reshape(n, n)
        second = sweep.escalation_rates[:, 1].reshape(n, n)
        cost = sweep.cost_usd_per_million.reshape(n, n)
        # lowering either threshold never escalates more nor costs more
        assert (np.diff(first, axis=0) >= 0).all()
        assert (np.diff(first, axis=1) == 0).all()
        assert (np.diff(second, axis=0) >= 0).all()
        assert (np.diff(second, axis=1) >= 0).all()
        assert (np.diff(cost, axis=0) >= -1e-9).all()
        assert (np.diff(cost, axis=1) >= -1e-9).all()
        assert (second <= first).all()
        # both thresholds 0: the device answers everything
        assert sweep.accuracy[0] == pytest.approx(result.variant_accuracy["tiny"])


def test_oracle_bounds_every_setting(
    result: CalibrationResult, stage_probabilities: tuple[list[np.ndarray], np.ndarray]
) -> None:
    probs, y = stage_probabilities
    ok = [p.argmax(1) == y for p in probs]
    solvable = ok[0] | ok[1] | ok[2]
    assert result.oracle.accuracy == pytest.approx(solvable.mean())
    expected = USD[1] * (solvable & ~ok[0]).mean() + USD[2] * (solvable & ~ok[0] & ~ok[1]).mean()
    assert result.oracle.cost_usd_per_million == pytest.approx(expected * 1e6)
    for rule in result.rules.values():
        sweep = rule.sweep
        assert result.oracle.accuracy >= sweep.accuracy.max()
        as_good = sweep.accuracy >= result.oracle.accuracy
        assert (sweep.cost_usd_per_million[as_good] >= result.oracle.cost_usd_per_million).all()
        assert rule.chosen is not None
        assert rule.chosen.cost_usd_per_million >= result.oracle.cost_usd_per_million


def test_chosen_thresholds_reach_target_recomputed(
    result: CalibrationResult, stage_probabilities: tuple[list[np.ndarray], np.ndarray]
) -> None:
    probs, y = stage_probabilities
    assert result.cloud_only.accuracy == pytest.approx((probs[2].argmax(1) == y).mean())
    assert result.target_accuracy == pytest.approx(0.995 * result.cloud_only.accuracy)
    for name, rule in result.rules.items():
        chosen = rule.chosen
        assert chosen is not None, name
        t1, t2 = chosen.thresholds
        escalator = make_rule(name)
        right = cost = 0.0
        for i in range(y.shape[0]):  # one request at a time, as the router would
            row = [{"probabilities": p[i : i + 1]} for p in probs]
            stage = 0
            if escalator.escalate(row[0], t1)[0]:
                stage = 1 if not escalator.escalate(row[1], t2)[0] else 2
            right += probs[stage][i].argmax() == y[i]
            cost += sum(USD[: stage + 1])
        accuracy, cost_per_million = right / y.shape[0], cost / y.shape[0] * 1e6
        assert accuracy == pytest.approx(chosen.accuracy)
        assert accuracy >= result.target_accuracy
        assert cost_per_million == pytest.approx(chosen.cost_usd_per_million)
        # nothing swept reaches the target for less
        reach = rule.sweep.accuracy >= result.target_accuracy - 1e-12
        assert rule.sweep.cost_usd_per_million[reach].min() == pytest.approx(cost_per_million)
        assert rule.fraction_of_cloud_cost == pytest.approx(cost_per_million / 200.0)
        oracle = result.oracle.cost_usd_per_million
        assert rule.oracle_savings_captured == pytest.approx(
            (200.0 - cost_per_million) / (200.0 - oracle)
        )


def test_frontier_is_pareto(result: CalibrationResult) -> None:
    for rule in result.rules.values():
        costs = [s.cost_usd_per_million for s in rule.curve]
        accuracy = [s.accuracy for s in rule.curve]
        assert costs == sorted(costs)
        assert all(np.diff(accuracy) > 0)
        assert accuracy[-1] == pytest.approx(rule.sweep.accuracy.max())


def test_result_serializes(result: CalibrationResult) -> None:
    doc = orjson.loads(orjson.dumps(result.to_dict()))
    assert doc["variants"] == list(VARIANTS)
    assert doc["tiers"] == ["device", "edge", "cloud"]
    assert doc["usd_per_inference"] == [DEFAULT_USD_PER_INFERENCE[t] for t in doc["tiers"]]
    assert set(doc["rules"]) == {"max_prob", "margin", "entropy"}
    for rule in doc["rules"].values():
        assert len(rule["thresholds"]) == 2
        assert rule["curve"]
        assert 0 < rule["oracle_savings_captured"] < 1


def test_two_stage_cascade_on_zoo(zoo_dir: Path) -> None:
    res = calibrate(zoo_dir, variants=["tiny", "large"], rules=["margin"], target_accuracy=0.95)
    chosen = res.rules["margin"].chosen
    assert chosen is not None
    assert len(chosen.thresholds) == 1
    assert chosen.accuracy >= 0.95 * res.variant_accuracy["large"]


# -- costs from a spec ----------------------------------------------------------------------


def test_spec_costs_retail_shelf() -> None:
    costs = spec_usd_per_inference(load_spec(ROOT / "examples" / "retail-shelf.yaml"))
    assert costs.tiers == {"device": "shelf-cam", "edge": "store-edge", "cloud": "reid-cloud"}
    assert costs.workload == "shelf-detect"
    assert all(v > 0 for v in costs.usd_per_inference.values())
    reid = spec_usd_per_inference(
        load_spec(ROOT / "examples" / "retail-shelf.yaml"), workload="product-reid"
    )
    # the edge box's fixed cost spread over less traffic costs more per inference
    assert reid.usd_per_inference["edge"] > costs.usd_per_inference["edge"]


def test_spec_without_a_kind_is_refused() -> None:
    spec = load_spec(ROOT / "examples" / "batch-summarization.yaml")
    with pytest.raises(ConfigError, match="device"):
        spec_usd_per_inference(spec)
    with pytest.raises(ConfigError, match="workload"):
        spec_usd_per_inference(spec, workload="ghost")
