"""Escalation rules on hand-made outputs whose confidences are computed by hand."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from tierwise.errors import ConfigError
from tierwise.escalation.rules import (
    RULES,
    CallableRule,
    DetectorScore,
    EscalationRule,
    Margin,
    MaxProbability,
    NormalizedEntropy,
    make_rule,
)

PROBS = np.array([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2], [1.0, 0.0, 0.0]], dtype=np.float32)


def out(p: object, name: str = "probabilities") -> dict[str, np.ndarray]:
    return {name: np.asarray(p, dtype=np.float32), "label": np.zeros(np.ndim(p), np.int64)}


def test_max_probability_is_top1() -> None:
    np.testing.assert_allclose(MaxProbability().confidence(out(PROBS)), [0.7, 0.4, 1.0], 1e-6)


def test_margin_is_top1_minus_top2() -> None:
    np.testing.assert_allclose(Margin().confidence(out(PROBS)), [0.5, 0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(Margin().confidence(out([[0.3, 0.7]])), [0.4], atol=1e-6)


def test_entropy_uniform_zero_one_hot_one() -> None:
    rows = [[0.25] * 4, [0.0, 1.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0], [2.0, 2.0, 0.0, 0.0]]
    conf = NormalizedEntropy().confidence(out(rows))
    # [0.5, 0.5, 0, 0]: H = log 2, 1 - log 2 / log 4 = 0.5; unnormalized rows normalize first
    np.testing.assert_allclose(conf, [0.0, 1.0, 0.5, 0.5], atol=1e-9)


def test_entropy_is_safe_on_zeros_negatives_and_nan() -> None:
    rows = [[0.0] * 4, [math.nan] * 4, [-1.0, 1.0, 0.0, 0.0]]
    conf = NormalizedEntropy().confidence(out(rows))
    assert not np.isnan(conf).any()
    np.testing.assert_allclose(conf, [0.0, 0.0, 1.0])


def test_scores_outside_unit_interval_are_clipped_and_nan_escalates() -> None:
    logits = out([[3.0, -1.0, 0.0], [math.nan, 0.1, 0.2]])
    # a row holding NaN is broken: confidence 0, so it escalates
    np.testing.assert_allclose(MaxProbability().confidence(logits), [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(Margin().confidence(logits), [1.0, 0.0], atol=1e-6)
    assert MaxProbability().escalate(out([[math.nan, math.nan]]), 0.01).tolist() == [True]


def test_detector_mean_box_score_ignores_padding() -> None:
    scores = [[0.9, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.8, math.nan, -1.0, 0.0]]
    conf = DetectorScore().confidence(out(scores, "scores"))
    np.testing.assert_allclose(conf, [0.7, 0.0, 0.8], atol=1e-6)


def test_escalate_is_confidence_below_threshold() -> None:
    rule = MaxProbability()
    assert rule.escalate(out(PROBS), 0.5).tolist() == [False, True, False]
    assert rule.escalate(out(PROBS), 0.0).tolist() == [False, False, False]
    assert rule.escalate(out(PROBS), 1.0).tolist() == [True, True, False]
    assert rule.escalate(out(PROBS), 0.69).tolist() == [False, True, False]


@pytest.mark.parametrize("threshold", [-0.1, 1.5, math.nan, True])
def test_threshold_out_of_range(threshold: float) -> None:
    with pytest.raises(ConfigError, match="threshold"):
        MaxProbability().escalate(out(PROBS), threshold)


def test_one_dimensional_tensor_is_one_row() -> None:
    assert MaxProbability().confidence(out([0.2, 0.8])).shape == (1,)


def test_missing_output_names_tensor_rule_and_what_is_there() -> None:
    with pytest.raises(ConfigError) as info:
        DetectorScore().confidence(out(PROBS))
    message = str(info.value)
    assert "'scores'" in message
    assert "'detector'" in message
    assert "probabilities" in message


@pytest.mark.parametrize(
    ("rule", "value"),
    [(Margin(), [[1.0]]), (MaxProbability(), np.zeros((2, 3, 4))), (Margin(), [["a", "b"]])],
    ids=["one-class", "3-d", "strings"],
)
def test_tensor_out_of_shape(rule: EscalationRule, value: object) -> None:
    with pytest.raises(ConfigError, match="probabilities"):
        rule.confidence({"probabilities": np.asarray(value)})


def test_confidence_always_in_unit_interval() -> None:
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(500, 10)) * 3
    raw[rng.random(raw.shape) < 0.05] = np.nan
    for name in ("max_prob", "margin", "entropy"):
        conf = make_rule(name).confidence({"probabilities": raw})
        assert conf.shape == (500,), name
        assert ((conf >= 0) & (conf <= 1)).all(), name
    conf = make_rule("detector").confidence({"scores": raw})
    assert ((conf >= 0) & (conf <= 1)).all()


def test_callable_rule() -> None:
    rule = CallableRule(lambda o: o["probabilities"][:, 0], name="first")
    assert rule.label == "first"
    assert rule.escalate(out(PROBS), 0.5).tolist() == [False, True, False]
    single = CallableRule(lambda o: 0.3)
    assert single.confidence(out([[0.3, 0.7]])).tolist() == [0.3]


@pytest.mark.parametrize(
    ("fn", "needle"),
    [
        (lambda o: np.ones(2), "3 values"),
        (lambda o: np.ones((3, 1)), "1-D"),
        (lambda o: np.array([0.1, 1.2, 0.3]), r"\[0, 1\]"),
        (lambda o: np.array([0.1, np.nan, 0.3]), r"\[0, 1\]"),
        (lambda o: ["x", "y", "z"], "numbers"),
    ],
    ids=["length", "shape", "range", "nan", "not-numbers"],
)
def test_callable_rule_return_is_checked(fn: object, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as info:
        CallableRule(fn, name="mine").confidence(out(PROBS))  # type: ignore[arg-type]
    assert "'mine'" in str(info.value)


def test_registry_and_make_rule() -> None:
    assert set(RULES) == {"max_prob", "margin", "entropy", "detector"}
    for name, cls in RULES.items():
        rule = make_rule(name)
        assert isinstance(rule, cls)
        assert rule.label == name
    assert make_rule("max_prob", output="probs").output == "probs"
    instance = Margin()
    assert make_rule(instance) is instance
    custom = make_rule(lambda o: np.ones(3), name="ones")
    assert isinstance(custom, CallableRule)
    assert custom.label == "ones"


def test_make_rule_errors() -> None:
    with pytest.raises(ConfigError) as info:
        make_rule("max_probability")
    assert "detector, entropy, margin, max_prob" in str(info.value)
    with pytest.raises(ConfigError, match="options"):
        make_rule("margin", colour="red")
    with pytest.raises(ConfigError, match="options"):
        make_rule(Margin(), output="x")
    with pytest.raises(ConfigError, match="rule"):
        make_rule(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="output"):
        MaxProbability(output="")


@pytest.mark.parametrize("name", ["max_prob", "margin", "entropy"])
def test_one_row_is_fast(name: str) -> None:
    rule = make_rule(name)
    one = {"probabilities": np.full((1, 10), 0.1, dtype=np.float32)}
    runs = 2000
    start = time.perf_counter()
    for _ in range(runs):
        rule.escalate(one, 0.5)
    per_call_us = (time.perf_counter() - start) / runs * 1e6
    assert per_call_us < 200, f"{name}: {per_call_us:.1f} us per call"


_VALUES = [0.0, 0.3, 0.95, 1.0, 1.5, -0.2, math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("rule", [MaxProbability(), Margin(), NormalizedEntropy()])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("shape", [(1, 4), (1, 1), (3, 4), (0, 4), (1, 300)])
def test_request_confidence_is_the_least_rows(
    rule: EscalationRule, dtype: type, shape: tuple[int, int]
) -> None:
    """What the router compares with a threshold equals min(confidence) (0 for no rows),
    NaN and infinities included, whatever shortcut a rule takes."""
    rng = np.random.default_rng(sum(shape) + len(rule.name))
    for _ in range(40):
        raw = rng.choice(_VALUES + list(rng.random(6)), size=shape)
        if np.dtype(dtype).kind == "i":
            raw = np.nan_to_num(raw, nan=0.0, posinf=1.0, neginf=0.0).round()
        if shape[1] < 2 and rule.name != "max_prob":
            continue
        outputs = {"probabilities": raw.astype(dtype)}
        with np.errstate(invalid="ignore"):  # margin's inf - inf: NaN, as it should be
            scores = rule.confidence(outputs)
            expected = float(scores.min()) if scores.size else 0.0
            assert rule.request_confidence(outputs) == expected, raw


def test_request_confidence_refuses_what_confidence_refuses() -> None:
    with pytest.raises(ConfigError, match="probabilities"):
        MaxProbability("probabilities").request_confidence({"scores": np.ones((1, 3), np.float32)})
    with pytest.raises(ConfigError, match="numeric"):
        MaxProbability().request_confidence({"probabilities": np.array([["a", "b"]])})
