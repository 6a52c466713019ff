// The page's telemetry: counts by outcome and a latency histogram per window, sent to the
// gateway's POST /v2/telemetry/device as tierwise.telemetry.device takes them. Aggregates
// only: no input, no output and no drift statistic ever leaves the page (drift scores are
// computed from inputs, which a sensitive workload may not send, so the page sends none).

export const OUTCOMES = Object.freeze([
  "answered",
  "escalated",
  "degraded",
  "deferred",
  "no_route",
  "deadline",
  "error",
]);

/** Latency bucket bounds (ms): "at most this many" per bucket, and one bucket over the last. */
export const LATENCY_BOUNDS_MS = Object.freeze([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]);

function reportId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return "page-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Unsent reports kept at most (each a closed window). */
export const MAX_PENDING = 64;

/** One window of one workload's counts; `now` is a clock in ms. */
export class Window {
  constructor(now) {
    this.startedMs = now;
    this.counts = {};
    this.latency = new Array(LATENCY_BOUNDS_MS.length + 1).fill(0);
    this.sumMs = 0;
  }

  count(outcome, latencyMs) {
    if (!OUTCOMES.includes(outcome)) throw new Error(`unknown outcome '${outcome}'`);
    this.counts[outcome] = (this.counts[outcome] ?? 0) + 1;
    if (latencyMs !== null && latencyMs !== undefined && Number.isFinite(latencyMs)) {
      const ms = Math.max(0, latencyMs);
      let i = LATENCY_BOUNDS_MS.findIndex((b) => ms <= b);
      if (i < 0) i = LATENCY_BOUNDS_MS.length;
      this.latency[i] += 1;
      this.sumMs += ms;
    }
  }

  get empty() {
    return Object.keys(this.counts).length === 0;
  }

  /** The report body for this window (`deviceClass`, `workload` as the plan names them). */
  report(deviceClass, workload, now) {
    const doc = {
      device_class: deviceClass,
      workload,
      window_s: Math.max(0.001, (now - this.startedMs) / 1000),
      report_id: reportId(),
      counts: { ...this.counts },
    };
    if (this.latency.some((c) => c > 0)) {
      doc.latency_ms = {
        bounds: [...LATENCY_BOUNDS_MS],
        counts: [...this.latency],
        sum_ms: Math.round(this.sumMs * 1000) / 1000,
      };
    }
    return doc;
  }
}

/**
 * Counts outcomes and sends them. A report that could not be sent is kept, with its
 * report_id, and sent again before the next one (the gateway counts a report_id once),
 * so nothing is lost or counted twice while the link is down.
 */
export class Telemetry {
  constructor({ deviceClass, workload, send, now = () => Date.now() }) {
    this.deviceClass = deviceClass;
    this.workload = workload;
    this.send = send; // async (doc) => void; throws when not delivered
    this.now = now;
    this.window = new Window(now());
    this.pending = [];
    this.sent = 0;
  }

  count(outcome, latencyMs = null) {
    this.window.count(outcome, latencyMs);
  }

  /** Close the window and send what is waiting; resolves to the number of reports sent. */
  async flush() {
    // past MAX_PENDING unsent reports, the window stays open and keeps counting instead
    if (!this.window.empty && this.pending.length < MAX_PENDING) {
      this.pending.push(this.window.report(this.deviceClass, this.workload, this.now()));
      this.window = new Window(this.now());
    }
    let sent = 0;
    while (this.pending.length > 0) {
      try {
        await this.send(this.pending[0]);
      } catch {
        break; // kept for the next flush, under the same report_id
      }
      this.pending.shift();
      sent += 1;
      this.sent += 1;
    }
    return sent;
  }
}
