"""Cascade stages name the tensor holding their scores (``output:``) and what it holds
(``scores: probabilities | logits``), checked against each tier's model when the router
starts, on models the digits zoo did not make: an OCR-style classifier whose only output
is ``save_infer_model/scale_0.tmp_1``, its logits twin, and one with two float outputs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from score_models import (
    BLURRY,
    PADDLE_OUTPUT,
    SHARP,
    image_classifier,
    images,
    logits_of,
)
from server_helpers import free_port, running_server
from tierwise.errors import ConfigError, SpecError
from tierwise.escalation.rules import (
    Margin,
    MaxProbability,
    NormalizedEntropy,
    make_rule,
    pick_score_output,
    softmax,
)
from tierwise.planfile.load import parse_plan
from tierwise.planfile.schema import Plan
from tierwise.protocol import InferRequest
from tierwise.router import Client
from tierwise.router.build import build_router
from tierwise.router.types import RequestMeta
from tierwise.server import ServerSettings

H, W = 4, 8  # small images: routing does not need the 48 x 192
THRESHOLD = 0.9


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("score-models")
    return {
        "probs": image_classifier(root / "probs.onnx", BLURRY, height=H, width=W),
        "logits": image_classifier(
            root / "logits.onnx", BLURRY, logits=True, output="logits_out", height=H, width=W
        ),
        "sharp": image_classifier(root / "sharp.onnx", SHARP, height=H, width=W, label=True),
        "two": image_classifier(root / "two.onnx", BLURRY, height=H, width=W, second_output="aux"),
        "zoo_named": image_classifier(
            root / "zoo_named.onnx",
            BLURRY,
            output="probabilities",
            height=H,
            width=W,
            second_output="aux",
        ),
    }


def plan_doc(device: dict[str, Any], cloud: dict[str, Any] | None = None) -> dict[str, Any]:
    """Two tiers: ``device`` (a local model) and ``cloud`` (the same model by default);
    ``device`` holds the first stage's extra fields and ``model``."""
    stage = {k: v for k, v in device.items() if k != "model"}
    cloud_tier: dict[str, Any] = {"kind": "cloud", "region": "r1", "rtt_p50_ms": 1,
                                  "rtt_p99_ms": 2, "cost_usd_per_inference": 1e-4}  # fmt: skip
    cloud_tier |= cloud or {"local": {"model": str(device["model"])}}
    return {
        "version": 1,
        "tiers": {
            "device": {
                "kind": "device",
                "site": "s1",
                "region": "r1",
                "local": {"model": str(device["model"])},
                "rtt_p50_ms": 0,
                "rtt_p99_ms": 0,
                "cost_usd_per_inference": 0,
            },
            "cloud": cloud_tier,
        },
        "workloads": {
            "ocr": {
                "privacy": "public",
                "cascade": [
                    {"tier": "device", "rule": "max_prob", "threshold": THRESHOLD, **stage},
                    {"tier": "cloud"},
                ],
            }
        },
    }


def load(doc: dict[str, Any]) -> Plan:
    return parse_plan(yaml.safe_dump(doc), "plan.yaml")


async def answer_tiers(client: Client, x: np.ndarray) -> list[str | None]:
    out = []
    for row in x:
        result = await client.infer({"x": row[None]}, workload="ocr")
        assert not result.degraded
        out.append(result.tier)
    return out


def expected_tiers(x: np.ndarray) -> list[str]:
    top = softmax(logits_of(x, BLURRY)).max(axis=1)
    return ["device" if p >= THRESHOLD else "cloud" for p in top]


# --- rules -------------------------------------------------------------------------------


def test_softmax_is_stable_and_rules_read_logits_as_probabilities() -> None:
    huge = np.array([[1e4, 1e4 - 1.0, -1e4]], np.float32)
    p = softmax(huge)
    assert np.isfinite(p).all()
    assert p[0].tolist() == pytest.approx([1 / (1 + np.exp(-1.0)), 1 / (1 + np.exp(1.0)), 0.0])
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 3, size=(300, 5)).astype(np.float32)
    probs = softmax(logits).astype(np.float32)
    for cls in (MaxProbability, Margin, NormalizedEntropy):
        as_logits = cls("t", scores="logits").confidence({"t": logits})
        as_probs = cls("t").confidence({"t": probs})
        assert as_logits == pytest.approx(as_probs, abs=1e-6), cls.name
    # the one-row fast path gives what the vectorized one does
    rule = MaxProbability("t", scores="logits")
    for row in logits[:50]:
        one = {"t": row[None]}
        assert rule.request_confidence(one) == pytest.approx(float(rule.confidence(one)[0]))
    nan = {"t": np.array([[np.nan, 1.0]], np.float32)}
    assert rule.request_confidence(nan) == 0.0  # broken logits escalate


def test_a_rule_without_output_picks_the_only_score_tensor_or_refuses() -> None:
    scores = np.array([[0.2, 0.8]], np.float32)
    label = np.array([1], np.int64)
    assert pick_score_output({PADDLE_OUTPUT: scores, "label": label}) == PADDLE_OUTPUT
    assert pick_score_output({"probabilities": scores, "aux": scores}) == "probabilities"
    assert pick_score_output({"a": scores, "b": scores}) is None
    confidence = make_rule("max_prob").confidence({PADDLE_OUTPUT: scores, "label": label})
    assert confidence.tolist() == pytest.approx([0.8])
    with pytest.raises(ConfigError) as info:
        make_rule("margin").confidence({"a": scores, "b": scores})
    assert "set output:" in str(info.value)
    assert "a float32 [1, 2]" in str(info.value)
    with pytest.raises(ConfigError, match="scores: expected"):
        make_rule("detector", scores="logits")


# --- the plan file ------------------------------------------------------------------------


def test_plan_accepts_output_and_scores_and_names_bad_ones(models: dict[str, Path]) -> None:
    plan = load(plan_doc({"model": models["logits"], "output": "logits_out", "scores": "logits"}))
    stage = plan.workload("ocr").cascade[0]
    assert (stage.output, stage.scores, stage.score_kind) == ("logits_out", "logits", "logits")
    assert plan.workload("ocr").cascade[1].score_kind == "probabilities"
    with pytest.raises(SpecError) as info:
        load(plan_doc({"model": models["logits"], "scores": "logit"}))
    assert "workloads.ocr.cascade[0].scores" in str(info.value)
    assert "'probabilities'" in str(info.value)
    doc = plan_doc({"model": models["probs"], "rule": "detector", "scores": "logits"})
    with pytest.raises(SpecError, match=r"cascade\[0\]\.scores: expected probabilities"):
        load(doc)


# --- checked at start, routed at run time -------------------------------------------------


async def test_logits_and_probabilities_route_the_same(models: dict[str, Path]) -> None:
    """The same model, once emitting probabilities and once logits: with ``scores:
    logits`` the router escalates exactly the same rows, which are the rows whose
    softmax top probability is under the threshold."""
    x = images(80, height=H, width=W, seed=7)
    by_probs = load(
        plan_doc(
            {"model": models["probs"], "output": PADDLE_OUTPUT},
            {"local": {"model": str(models["sharp"])}},
        )
    )
    by_logits = load(
        plan_doc(
            {"model": models["logits"], "output": "logits_out", "scores": "logits"},
            {"local": {"model": str(models["sharp"])}},
        )
    )
    async with Client(by_probs) as client:
        from_probs = await answer_tiers(client, x)
    async with Client(by_logits) as client:
        from_logits = await answer_tiers(client, x)
    expected = expected_tiers(x)
    assert from_probs == from_logits == expected
    assert {"device", "cloud"} <= set(expected)  # both ways were taken


async def test_omitted_output_picks_the_unambiguous_one(models: dict[str, Path]) -> None:
    x = images(30, height=H, width=W, seed=8)
    cloud = {"local": {"model": str(models["sharp"])}}
    for model in ("probs", "zoo_named"):  # the only float output; 'probabilities' of two
        plan = load(plan_doc({"model": models[model]}, cloud))
        async with Client(plan) as client:
            assert await answer_tiers(client, x) == expected_tiers(x), model


@pytest.mark.parametrize(
    ("device", "needles"),
    [
        (
            {"model": "two"},
            ["workloads.ocr.cascade[0] (tier 'device', model '", "two.onnx'", "output: naming",
             f"2 are ('{PADDLE_OUTPUT}', 'aux')", f"'{PADDLE_OUTPUT}' FP32 [?, 2], 'aux' FP32"],
        ),
        (
            {"model": "probs", "output": "probabilities"},
            ["workloads.ocr.cascade[0] (tier 'device'", "an output named 'probabilities', but",
             f"the model's outputs: '{PADDLE_OUTPUT}' FP32 [?, 2]"],
        ),
        (
            {"model": "sharp", "output": "label"},
            ["output 'label' to hold scores", "INT64 [?], not a float tensor"],
        ),
    ],
    ids=["ambiguous", "missing", "not-scores"],
)  # fmt: skip
async def test_start_refuses_a_stage_the_model_cannot_serve(
    models: dict[str, Path], device: dict[str, Any], needles: list[str]
) -> None:
    doc = plan_doc({**device, "model": models[device["model"]]})
    client = Client(load(doc))
    with pytest.raises(ConfigError) as info:
        await client.start()
    await client.close()
    for needle in needles:
        assert needle in str(info.value)


async def test_a_remote_stage_is_checked_at_start_and_when_down_on_first_answer(
    models: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    repo = tmp_path / "repo"
    for name in ("probs", "sharp"):
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.onnx").write_bytes(models[name].read_bytes())
    x = images(30, height=H, width=W, seed=9)
    port = free_port()
    remote = {"url": f"http://127.0.0.1:{port}", "model": "probs", "timeout_s": 2}
    doc = plan_doc({"model": models["logits"], "output": "logits_out", "scores": "logits"})
    doc["tiers"]["edge"] = {
        "kind": "edge",
        "site": "s1",
        "region": "r1",
        "rtt_p50_ms": 1,
        "rtt_p99_ms": 2,
        "cost_usd_per_inference": 1e-5,
        **remote,
    }
    doc["tiers"]["cloud"] |= {"local": {"model": str(models["sharp"])}}
    cascade = doc["workloads"]["ocr"]["cascade"]
    cascade.insert(1, {"tier": "edge", "rule": "max_prob", "threshold": 0.99, "output": "nope"})
    cascade[0]["threshold"] = 1.0  # everything goes past the device
    plan = load(doc)

    refused = build_router(plan)
    with (
        running_server(ServerSettings(model_repo=repo), port=port),
        pytest.raises(ConfigError) as info,  # up at start: refused
    ):
        await refused.start()
    await refused.close()
    message = str(info.value)
    assert "workloads.ocr.cascade[1] (tier 'edge', model 'probs')" in message
    assert (
        f"an output named 'nope', but the model has none; the model's outputs: '{PADDLE_OUTPUT}'"
        in message
    )

    router = build_router(plan)  # down at start: started all the same, and it says so
    with caplog.at_level(logging.WARNING, logger="tierwise.router"):
        await router.start()
    assert "tier 'edge': its model's metadata could not be read at start" in caplog.text
    with running_server(ServerSettings(model_repo=repo), port=port):
        answers = [
            await router.infer(InferRequest({"x": row[None]}), RequestMeta("ocr")) for row in x
        ]
    await router.close()
    # the edge answered but its stage reads no scores from it: a failure, not the client's
    assert {a.answered_by for a in answers} == {"cloud"}
    first = answers[0].trace.attempts
    assert [(a.tier, a.outcome) for a in first] == [
        ("device", "escalated"), ("edge", "error"), ("cloud", "answered"),
    ]  # fmt: skip
    assert "cascade[1] cannot read scores from the answer of 'probs'" in first[1].reason
    assert router.fallbacks == {}  # the cloud's answer is final: nothing degraded
    step = router._steps["ocr"]["edge"]
    assert step.problem is not None
    assert "'nope'" in step.problem


async def test_a_request_naming_its_outputs_is_still_scored(models: dict[str, Path]) -> None:
    """A client asking only for ``label`` still has the stage's scores read (they are
    asked of the tier) and gets only what it asked for."""
    x = images(30, height=H, width=W, seed=10)
    doc = plan_doc(
        {"model": models["sharp"], "output": PADDLE_OUTPUT},
        {"local": {"model": str(models["sharp"])}},
    )
    async with Client(load(doc)) as client:
        for row in x:
            result = await client.infer({"x": row[None]}, workload="ocr", outputs=["label"])
            assert set(result.outputs) == {"label"}
            assert result.tier is not None
            assert result.trace.attempts[-1].outcome == "answered"
