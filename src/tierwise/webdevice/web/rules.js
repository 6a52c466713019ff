// Escalation rules, as tierwise.escalation.rules computes them in Python: one confidence
// per row in [0, 1] from a stage's score tensor, higher meaning more sure; a request
// escalates when its least confident row is under the stage's threshold.
//
//   max_prob  top-1 probability
//   margin    top-1 minus top-2 probability (|p0 - p1| for two classes)
//   entropy   1 - H(p) / log(K) over K classes (negative scores count as 0, rows are
//             normalised to sum to one first; a row with nothing positive gives 0)
//
// Scores given as logits go through a numerically stable softmax first. Confidences are
// clipped to [0, 1] and NaN counts as 0, so broken outputs escalate rather than pass.
// Arithmetic is in float64, as numpy's is.

export const RULES = Object.freeze(["max_prob", "margin", "entropy"]);
export const SCORE_KINDS = Object.freeze(["probabilities", "logits"]);
export const DEFAULT_SCORE_OUTPUT = "probabilities";

/** Half floats (raw uint16 bits) to float32: what a float16 tensor's data holds where the
 * browser has no Float16Array. */
export function halfToFloat(raw) {
  const out = new Float32Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const h = raw[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) out[i] = sign * 2 ** -14 * (frac / 1024);
    else if (exp === 31) out[i] = frac ? NaN : sign * Infinity;
    else out[i] = sign * 2 ** (exp - 15) * (1 + frac / 1024);
  }
  return out;
}

export class RuleError extends Error {
  constructor(message) {
    super(message);
    this.name = "RuleError";
  }
}

/** Clip to [0, 1], NaN to 0 (numpy: where(v > 0, minimum(v, 1), 0)). */
function finiteUnit(value) {
  return value > 0 ? Math.min(value, 1) : 0;
}

/** Softmax of one row (an array of numbers) in float64; NaN or +inf anywhere gives NaNs. */
export function softmax(row) {
  let top = -Infinity;
  for (const v of row) {
    if (Number.isNaN(v)) return row.map(() => NaN);
    if (v > top) top = v;
  }
  const e = row.map((v) => Math.exp(v - top));
  let total = 0;
  for (const v of e) total += v;
  return e.map((v) => v / total);
}

/** The score tensor a rule reads when the stage names none: "probabilities" when the
 * model has it, else the only float [rows, classes >= 2] output; null when there is no
 * such output or several. `outputs` maps names to {dims, type} (onnxruntime-web tensors
 * or their descriptions). */
export function pickScoreOutput(outputs) {
  if (DEFAULT_SCORE_OUTPUT in outputs) return DEFAULT_SCORE_OUTPUT;
  const found = Object.entries(outputs)
    .filter(([, t]) => isFloat(t.type) && t.dims.length === 2 && t.dims[1] >= 2)
    .map(([name]) => name);
  return found.length === 1 ? found[0] : null;
}

function isFloat(type) {
  return type === "float32" || type === "float64" || type === "float16";
}

/** The stage's score tensor as rows of numbers (logits turned into probabilities). */
export function scoreRows(outputs, stage) {
  const name = stage.output ?? pickScoreOutput(outputs);
  if (name == null) {
    const seen = Object.entries(outputs).map(([n, t]) => `${n} ${t.type} [${t.dims}]`);
    throw new RuleError(
      `expected an output named 'probabilities' or exactly one float [rows, classes >= 2]` +
        ` tensor for rule '${stage.rule}'; the model gives ${seen.join(", ")}`,
    );
  }
  const tensor = outputs[name];
  if (tensor === undefined) {
    throw new RuleError(
      `rule '${stage.rule}' reads output '${name}', which the model does not give` +
        ` (it gives ${Object.keys(outputs).sort().join(", ")})`,
    );
  }
  const dims = tensor.dims.length === 1 ? [1, tensor.dims[0]] : tensor.dims;
  if (dims.length !== 2) {
    throw new RuleError(
      `output '${name}' must be [rows, classes] for rule '${stage.rule}', got [${tensor.dims}]`,
    );
  }
  const [rows, columns] = dims;
  const data = tensor.type === "float16" && tensor.data instanceof Uint16Array ? halfToFloat(tensor.data) : tensor.data;
  // numpy subtracts float32 probabilities in float32 (margin); logits become float64
  const narrow = tensor.type !== "float64" && stage.scores !== "logits";
  const out = [];
  for (let r = 0; r < rows; r++) {
    const row = new Array(columns);
    for (let c = 0; c < columns; c++) row[c] = Number(data[r * columns + c]);
    out.push(stage.scores === "logits" ? softmax(row) : row);
  }
  return { name, rows: out, columns, narrow };
}

function maxProb(row) {
  let top = -Infinity;
  for (const v of row) {
    if (Number.isNaN(v)) return 0;
    if (v > top) top = v;
  }
  return finiteUnit(top);
}

function margin(row, narrow) {
  if (row.length < 2) throw new RuleError("rule 'margin' needs at least 2 classes");
  if (row.some(Number.isNaN)) return 0;
  const minus = narrow ? (a, b) => Math.fround(a - b) : (a, b) => a - b;
  if (row.length === 2) return finiteUnit(Math.abs(minus(row[0], row[1])));
  let first = -Infinity;
  let second = -Infinity;
  for (const v of row) {
    if (v > first) {
      second = first;
      first = v;
    } else if (v > second) {
      second = v;
    }
  }
  return finiteUnit(minus(first, second));
}

function entropy(row) {
  if (row.length < 2) throw new RuleError("rule 'entropy' needs at least 2 classes");
  if (row.some(Number.isNaN)) return 0; // the row's total is NaN: no valid distribution
  const p = row.map((v) => (v > 0 ? v : 0));
  let total = 0;
  for (const v of p) total += v;
  if (!Number.isFinite(total) || !(total > 0)) return 0;
  let h = 0;
  for (const v of p) {
    const q = v / total;
    if (q > 0) h -= q * Math.log(q);
  }
  return finiteUnit(1 - h / Math.log(p.length));
}

const CONFIDENCE = { max_prob: maxProb, margin, entropy };

/** One confidence per row of the stage's score tensor. `stage`: {rule, output, scores}. */
export function confidences(outputs, stage) {
  const fn = CONFIDENCE[stage.rule];
  if (fn === undefined) {
    throw new RuleError(
      `rule '${stage.rule}' does not run in the page (expected one of ${RULES.join(", ")})`,
    );
  }
  if (stage.scores !== undefined && stage.scores !== null && !SCORE_KINDS.includes(stage.scores)) {
    throw new RuleError(`scores must be one of ${SCORE_KINDS.join(", ")}, got '${stage.scores}'`);
  }
  const { rows, narrow } = scoreRows(outputs, stage);
  return rows.map((row) => fn(row, narrow));
}

/** The least confident row's confidence (0 for no rows): what the threshold is held to. */
export function requestConfidence(outputs, stage) {
  const each = confidences(outputs, stage);
  return each.length === 0 ? 0 : Math.min(...each);
}

/** Whether the request goes on to the next stage: confidence < threshold (a stage with
 * no threshold, the cascade's last, never escalates). */
export function escalates(confidence, threshold) {
  if (threshold === null || threshold === undefined) return false;
  if (!(threshold >= 0 && threshold <= 1)) {
    throw new RuleError(`threshold must be a number in [0, 1], got ${threshold}`);
  }
  return confidence < threshold;
}

/** Each row's top class (the label a classifier gives), from the stage's score tensor. */
export function labels(outputs, stage) {
  const { rows } = scoreRows(outputs, stage);
  return rows.map((row) => {
    let best = 0;
    for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
    return best;
  });
}
