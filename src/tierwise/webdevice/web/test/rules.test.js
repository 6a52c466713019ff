// The page's escalation rules against values computed by hand and by numpy
// (tierwise.escalation.rules) for the same rows.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  confidences,
  escalates,
  labels,
  pickScoreOutput,
  requestConfidence,
  RuleError,
  softmax,
} from "../rules.js";

const tensor = (rows, type = "float32") => ({
  dims: [rows.length, rows[0].length],
  type,
  data: Float32Array.from(rows.flat()),
});
const close = (a, b, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b}`);

test("max_prob is the top probability, clipped to [0, 1]", () => {
  const out = { probabilities: tensor([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]]) };
  const got = confidences(out, { rule: "max_prob" });
  close(got[0], Math.fround(0.7));
  close(got[1], 0.5);
  close(requestConfidence(out, { rule: "max_prob" }), 0.5);
  const wild = { probabilities: { dims: [1, 2], type: "float64", data: Float64Array.from([3, -1]) } };
  assert.equal(requestConfidence(wild, { rule: "max_prob" }), 1);
});

test("margin is top-1 minus top-2, and |p0 - p1| for two classes", () => {
  const out = { p: tensor([[0.1, 0.6, 0.3], [0.45, 0.55, 0]]) };
  const got = confidences(out, { rule: "margin", output: "p" });
  // float32 probabilities are subtracted in float32, as numpy does
  assert.equal(got[0], Math.fround(Math.fround(0.6) - Math.fround(0.3)));
  assert.equal(got[1], Math.fround(Math.fround(0.55) - Math.fround(0.45)));
  const two = { p: tensor([[0.2, 0.8]]) };
  assert.equal(confidences(two, { rule: "margin", output: "p" })[0], Math.fround(Math.fround(0.8) - Math.fround(0.2)));
  const near = { p: tensor([[1, 2 ** -30]]) }; // numpy: float32(1 - 2**-30) == 1.0
  assert.equal(confidences(near, { rule: "margin", output: "p" })[0], 1);
  const wide = { p: { dims: [1, 2], type: "float64", data: Float64Array.from([1, 2 ** -30]) } };
  assert.equal(confidences(wide, { rule: "margin", output: "p" })[0], 1 - 2 ** -30);
});

test("entropy is 1 for one-hot, 0 for uniform, and matches numpy in between", () => {
  const out = { probabilities: tensor([[1, 0, 0, 0], [0.25, 0.25, 0.25, 0.25], [0.7, 0.2, 0.1, 0]]) };
  const got = confidences(out, { rule: "entropy" });
  close(got[0], 1);
  close(got[1], 0, 1e-7);
  // numpy: 1 - H(p)/log(4) for p = float32([0.7, 0.2, 0.1, 0]) in float64
  const p = [Math.fround(0.7), Math.fround(0.2), Math.fround(0.1)];
  const total = p.reduce((a, b) => a + b);
  const h = -p.map((v) => v / total).reduce((a, q) => a + q * Math.log(q), 0);
  close(got[2], 1 - h / Math.log(4));
});

test("logits go through a stable softmax first, so decisions equal the probabilities'", () => {
  const logits = [[1000, 999, 0], [-3, 2, 0.5]];
  const probs = logits.map(softmax);
  for (const rule of ["max_prob", "margin", "entropy"]) {
    const fromLogits = confidences({ logits: { dims: [2, 3], type: "float64", data: Float64Array.from(logits.flat()) } }, { rule, output: "logits", scores: "logits" });
    const fromProbs = confidences({ probabilities: { dims: [2, 3], type: "float64", data: Float64Array.from(probs.flat()) } }, { rule });
    fromLogits.forEach((v, i) => close(v, fromProbs[i], 1e-12));
  }
  assert.ok(Number.isFinite(softmax([1000, 999, 0])[0]));
});

test("NaN rows count as 0 confidence, so they escalate", () => {
  const out = { probabilities: tensor([[NaN, 0.9, 0.1]]) };
  for (const rule of ["max_prob", "margin", "entropy"]) {
    assert.equal(requestConfidence(out, { rule }), 0, rule);
    assert.equal(escalates(requestConfidence(out, { rule }), 0.5), true);
  }
  const inf = { logits: { dims: [1, 2], type: "float32", data: Float32Array.from([Infinity, 1]) } };
  assert.equal(requestConfidence(inf, { rule: "max_prob", output: "logits", scores: "logits" }), 0);
});

test("escalates is confidence < threshold; no threshold never escalates", () => {
  assert.equal(escalates(0.89, 0.9), true);
  assert.equal(escalates(0.9, 0.9), false);
  assert.equal(escalates(0.1, null), false);
  assert.throws(() => escalates(0.5, 1.5), RuleError);
});

test("the score output is picked as the router picks it", () => {
  const f = (dims, type = "float32") => ({ dims, type, data: new Float32Array(dims.reduce((a, b) => a * b, 1)) });
  assert.equal(pickScoreOutput({ probabilities: f([1, 3]), logits: f([1, 3]) }), "probabilities");
  assert.equal(pickScoreOutput({ label: f([1], "int64"), scores: f([1, 10]) }), "scores");
  assert.equal(pickScoreOutput({ a: f([1, 10]), b: f([1, 10]) }), null);
  assert.throws(() => confidences({ a: f([1, 10]), b: f([1, 10]) }, { rule: "max_prob" }), /exactly one float/);
  assert.throws(() => confidences({ a: f([1, 10]) }, { rule: "max_prob", output: "b" }), /does not give/);
  assert.throws(() => confidences({ a: f([1, 10]) }, { rule: "detector" }), /does not run in the page/);
});

test("labels are each row's top class", () => {
  const out = { probabilities: tensor([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]]) };
  assert.deepEqual(labels(out, { rule: "max_prob" }), [1, 0]);
});

test("float16 scores held as raw bits are decoded before any rule reads them", () => {
  // 0.75, 0.25 and 1.0 as IEEE half floats
  const out = { probabilities: { dims: [2, 2], type: "float16", data: Uint16Array.from([0x3a00, 0x3400, 0x3c00, 0x0000]) } };
  assert.deepEqual(confidences(out, { rule: "max_prob" }), [0.75, 1]);
  assert.deepEqual(labels(out, { rule: "max_prob" }), [0, 0]);
});
