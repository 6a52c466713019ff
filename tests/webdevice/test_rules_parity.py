"""The page's escalation rules (rules.js, run by node) against the router's
(:mod:`tierwise.escalation.rules`) on the same tensors: random probabilities and logits
in float32 and float64, two and many classes, and the rows that break rules (NaN, inf,
negative scores, all zeros). max_prob and margin must agree exactly; entropy and
anything through softmax to 1e-12 (numpy sums pairwise and has its own exp and log)."""

from __future__ import annotations

import math
import subprocess
from typing import Any

import numpy as np
import orjson
import pytest

from binaries import require_binary
from tierwise.escalation.rules import make_rule
from tierwise.webdevice import WEB_DIR

SCRIPT = """
import { confidences } from %s;
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const value = (v) => (typeof v === "string" ? Number(v) : v);
const out = JSON.parse(Buffer.concat(chunks).toString()).map((c) => {
  const flat = c.rows.flat().map(value);
  const data = c.type === "float32" ? Float32Array.from(flat) : Float64Array.from(flat);
  const tensor = { dims: [c.rows.length, c.rows[0].length], type: c.type, data };
  return confidences({ s: tensor }, { rule: c.rule, output: "s", scores: c.scores });
});
process.stdout.write(JSON.stringify(out));
"""


def _json_value(v: float) -> Any:
    return v if math.isfinite(v) else str(v).replace("inf", "Infinity").replace("nan", "NaN")


def _page_confidences(node: str, doc: list[dict[str, Any]]) -> list[list[float]]:
    """rules.js's confidences for each case of ``doc``, computed by node."""
    module = orjson.dumps((WEB_DIR / "rules.js").as_uri()).decode()
    ran = subprocess.run(
        [node, "--input-type=module", "-e", SCRIPT % module],
        input=orjson.dumps(doc), capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr.decode()
    found: list[list[float]] = orjson.loads(ran.stdout)
    return found


def _cases() -> list[tuple[str, str, np.ndarray]]:
    rng = np.random.default_rng(5)
    tensors: list[tuple[str, np.ndarray]] = []
    for classes in (2, 3, 10):
        raw = rng.dirichlet(np.full(classes, 0.3), size=40)
        tensors.append(("probabilities", raw.astype(np.float32)))
        tensors.append(("probabilities", raw.astype(np.float64)))
        tensors.append(("logits", (rng.normal(0, 6, size=(40, classes))).astype(np.float32)))
    odd = np.array(
        [[np.nan, 0.5, 0.5], [np.inf, 0.1, 0.2], [-0.2, 0.6, 0.6], [0.0, 0.0, 0.0],
         [1.0, 2.0**-30, 0.0], [0.3, 0.3, 0.4], [1000.0, 999.0, -1000.0]],
    )  # fmt: skip
    tensors.append(("probabilities", odd.astype(np.float32)))
    tensors.append(("logits", odd.astype(np.float64)))
    return [
        (rule, scores, t) for rule in ("max_prob", "margin", "entropy") for scores, t in tensors
    ]


def test_the_page_rules_equal_the_routers() -> None:
    node = require_binary("node", "nodejs")
    cases = _cases()
    doc = [
        {"rule": r, "scores": s, "type": str(t.dtype),
         "rows": [[_json_value(float(v)) for v in row] for row in t]}
        for r, s, t in cases
    ]  # fmt: skip
    page = _page_confidences(node, doc)
    for (rule, scores, tensor), got in zip(cases, page, strict=True):
        expected = make_rule(rule, output="s", scores=scores).confidence({"s": tensor})
        where = f"{rule} on {scores} {tensor.dtype} [{tensor.shape[1]} classes]"
        if rule == "entropy" or scores == "logits":
            assert np.allclose(got, expected, rtol=0, atol=1e-12), where
        else:
            assert got == expected.tolist(), where


@pytest.mark.parametrize("rule", ["max_prob", "margin", "entropy"])
def test_decisions_at_every_threshold_agree(rule: str) -> None:
    """Held to the thresholds a calibration picks (a grid in [0, 1]), the page and the
    router escalate the same rows for exact rules; for entropy no row lies within 1e-12
    of a grid threshold, so its decisions agree too."""
    node = require_binary("node", "nodejs")
    rng = np.random.default_rng(9)
    tensor = rng.dirichlet(np.full(10, 0.4), size=300).astype(np.float32)
    doc = [{"rule": rule, "scores": "probabilities", "type": "float32", "rows": tensor.tolist()}]
    got = np.array(_page_confidences(node, doc)[0])
    expected = make_rule(rule, output="s").confidence({"s": tensor})
    for threshold in np.linspace(0.0, 1.0, 101):
        assert ((got < threshold) == (expected < threshold)).all(), threshold
