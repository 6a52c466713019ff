// tierwise-device: the device tier of a tierwise fleet, in the page.
//
//   import { DeviceTier } from "/device/tierwise-device.js";
//   const tier = await DeviceTier.open({ workload: "parcel-codes" });
//   const answer = await tier.infer({ image: { data: pixels, dims: [1, 8, 8] } });
//   answer.label, answer.tier, answer.confidence, answer.degraded, answer.latencyMs
//
// The gateway says how (GET /v2/models/{workload}/device, derived from the plan): the
// device variant's ONNX with its manifest sha256, the first cascade stage's rule and
// threshold, the workload's privacy, urgency and deadline, and whether its data may leave
// the device at all. The page runs the stage with onnxruntime-web (WebGPU when the
// browser offers an adapter, else WASM), answers at once when the stage is sure, and
// otherwise escalates through the gateway with the V2 protocol (binary tensors when the
// gateway takes them), which continues the cascade after the device's stage. Escalations
// that cannot be made (link down, no answer within the deadline, no tier reachable)
// answer from the device, degraded; deferrable ones are queued in IndexedDB and sent,
// once each (idempotency key), when the link returns. Models are checked against their
// sha256 (Web Crypto) before use, cached, and swapped only after a new one verified and
// warmed. Counts and latencies go to the gateway's device telemetry endpoint.

import { escalates, labels, requestConfidence, RuleError, scoreRows } from "./rules.js";
import { Telemetry } from "./telemetry.js";
import { IntegrityError, Outbox, OutboxFullError, pruneModels, verifiedModel } from "./store.js";
import { answerOf, DRAIN_TIMEOUT_MS, drainOutbox, LinkError, post } from "./link.js";
import { ARRAYS, asScoreTensors, encodeRequest } from "./v2.js";

export { IntegrityError, LinkError, OutboxFullError, RuleError };

const MODEL_CACHE = "tierwise-device-models";

/** An input's values as the typed array of its datatype (copied only when they are not). */
function typedInput(spec, data) {
  const Array_ = ARRAYS[spec.datatype];
  if (Array_ === undefined) {
    throw new Error(`input '${spec.name}': datatype ${spec.datatype} is not supported in the page`);
  }
  return data instanceof Array_ ? data : Array_.from(data);
}

async function loadRuntime(vendor, { numThreads, preferWebGpu }) {
  let gpu = false;
  if (preferWebGpu && globalThis.navigator?.gpu !== undefined) {
    try {
      gpu = (await navigator.gpu.requestAdapter()) !== null;
    } catch {
      gpu = false;
    }
  }
  const ort = await import(`${vendor}${gpu ? "ort.webgpu.min.mjs" : "ort.wasm.min.mjs"}`);
  ort.env.wasm.wasmPaths = vendor;
  ort.env.wasm.numThreads = numThreads;
  return { ort, providers: gpu ? ["webgpu", "wasm"] : ["wasm"], backend: gpu ? "webgpu" : "wasm" };
}

function idempotencyKey() {
  return globalThis.crypto?.randomUUID?.() ?? `k-${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

function concreteDims(shape) {
  return shape.map((d) => (typeof d === "number" && d > 0 ? d : 1));
}

/** onnxruntime-web outputs as plain {dims, type, data} (what the rules read). */
function plainOutputs(results) {
  const out = {};
  for (const [name, t] of Object.entries(results)) out[name] = { dims: [...t.dims], type: t.type, data: t.data };
  return out;
}

export class DeviceTier extends EventTarget {
  /**
   * Fetch the workload's device settings and model from the gateway, verify, load and
   * warm it. Options: gateway (base URL; default the page's origin), workload, token (a
   * bearer token with scopes infer and telemetry when the gateway has tokens), vendor
   * (where onnxruntime-web's files are; default /device/vendor/ on the gateway),
   * numThreads (1), preferWebGpu (true), deadlineMs (overrides the workload's),
   * telemetryIntervalMs (30000; 0: only flushTelemetry()), updateIntervalMs (60000; 0:
   * only checkForUpdate()), retryIntervalMs (5000), fetch.
   */
  static async open(options) {
    const tier = new DeviceTier(options);
    await tier.start();
    return tier;
  }

  constructor({
    gateway = "",
    workload,
    token = null,
    vendor = null,
    numThreads = 1,
    preferWebGpu = true,
    deadlineMs = null,
    telemetryIntervalMs = 30000,
    updateIntervalMs = 60000,
    retryIntervalMs = 5000,
    fetch = globalThis.fetch.bind(globalThis),
  }) {
    super();
    if (typeof workload !== "string" || workload === "") throw new Error("workload: expected the workload's name");
    this.gateway = gateway.replace(/\/+$/, "");
    this.workload = workload;
    this.token = token;
    this.vendor = vendor ?? `${this.gateway}/device/vendor/`;
    this.numThreads = numThreads;
    this.preferWebGpu = preferWebGpu;
    this.deadlineMs = deadlineMs;
    this.intervals = { telemetry: telemetryIntervalMs, update: updateIntervalMs, retry: retryIntervalMs };
    this._fetch = fetch;
    this.linkCut = false; // the demo page's switch: the page behaves as if the link were down
    this.settings = null;
    this.session = null;
    this.version = null;
    this.timers = [];
    this.flushing = null;
    this.updating = null; // one update at a time
    this.running = new Map(); // session -> runs in flight
    this.retired = new Map(); // a replaced session -> its release, called when it is idle
  }

  get headers() {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  /** fetch through the page's link (refused while the link is cut). */
  async fetch(url, init = {}) {
    if (this.linkCut) throw new TypeError("the link is cut (the page's switch)");
    return this._fetch(url, { ...init, headers: { ...this.headers, ...(init.headers ?? {}) } });
  }

  async start() {
    const started = performance.now();
    this.runtime = await loadRuntime(this.vendor, { numThreads: this.numThreads, preferWebGpu: this.preferWebGpu });
    this.startedOffline = false;
    const settings = await this.fetchSettings({ fallback: true });
    await this.activate(settings);
    this.outbox = globalThis.indexedDB === undefined ? null : await Outbox.open();
    this.telemetry = new Telemetry({
      deviceClass: settings.device_class,
      workload: this.workload,
      send: (doc) => this.sendTelemetry(doc),
    });
    this.coldStartMs = performance.now() - started;
    this.every(this.intervals.telemetry, () => this.flushTelemetry());
    this.every(this.intervals.update, () => this.checkForUpdate());
    this.every(this.intervals.retry, () => this.flush());
    globalThis.addEventListener?.("online", () => this.flush());
    globalThis.addEventListener?.("pagehide", () => this.flushTelemetry());
    this.flush();
  }

  every(ms, fn) {
    if (ms > 0) this.timers.push(setInterval(() => fn().catch(() => {}), ms));
  }

  /** The workload's device settings from the gateway; when it cannot be reached, the
   * last ones this page received (its model is then taken from Cache Storage, checked). */
  async fetchSettings({ fallback = false } = {}) {
    const url = `${this.gateway}/v2/models/${encodeURIComponent(this.workload)}/device`;
    const kept = `tierwise-device:settings:${this.gateway}:${this.workload}`;
    let response;
    try {
      response = await this.fetch(url, { cache: "no-store" });
    } catch (err) {
      const saved = fallback ? globalThis.localStorage?.getItem(kept) : null;
      if (saved) {
        this.startedOffline = true;
        return JSON.parse(saved);
      }
      throw err;
    }
    if (!response.ok) {
      let detail = "";
      try {
        detail = (await response.json()).error ?? "";
      } catch {
        detail = "";
      }
      throw new Error(`device settings for '${this.workload}': HTTP ${response.status} ${detail}`.trim());
    }
    const settings = await response.json();
    globalThis.localStorage?.setItem(kept, JSON.stringify(settings));
    return settings;
  }

  /** Verify, load and warm the settings' model; only then make it (and them) current. */
  async activate(settings) {
    const model = settings.model;
    const { bytes } = await verifiedModel({
      url: `${this.gateway}${model.url}`,
      sha256: model.sha256,
      sizeBytes: model.size_bytes,
      fetch: (url, init) => this.fetch(url, init),
      cacheName: MODEL_CACHE,
    });
    const { ort, providers } = this.runtime;
    const session = await ort.InferenceSession.create(bytes, { executionProviders: providers });
    await this.run(session, settings, this.warmupFeeds(settings)); // warm before it serves
    const old = this.session;
    this.session = session;
    this.settings = settings;
    this.version = model.version;
    if (old !== null) this.retire(old);
    const prefix = `${this.gateway}/v2/models/${encodeURIComponent(this.workload)}/device/model/`;
    await pruneModels(MODEL_CACHE, prefix, [`${this.gateway}${model.url}`]).catch(() => {});
    this.dispatchEvent(new CustomEvent("model", { detail: { version: model.version, sha256: model.sha256 } }));
  }

  /** Release a replaced session once the runs it started have finished. */
  retire(session) {
    const release = () => session.release().catch(() => {});
    if ((this.running.get(session) ?? 0) === 0) release();
    else this.retired.set(session, release);
  }

  warmupFeeds(settings) {
    const feeds = {};
    for (const input of settings.model.inputs) {
      const dims = concreteDims(input.shape);
      const Array_ = ARRAYS[input.datatype] ?? Float32Array;
      feeds[input.name] = { data: new Array_(dims.reduce((a, b) => a * b, 1)), dims };
    }
    return feeds;
  }

  tensors(settings, inputs) {
    const { ort } = this.runtime;
    const feeds = {};
    for (const spec of settings.model.inputs) {
      const given = inputs[spec.name];
      if (given === undefined) {
        const names = settings.model.inputs.map((i) => i.name).join(", ");
        throw new Error(`input '${spec.name}' is missing; the model takes ${names}`);
      }
      feeds[spec.name] = new ort.Tensor(spec.type, typedInput(spec, given.data), given.dims);
    }
    return feeds;
  }

  async run(session, settings, inputs) {
    const feeds = this.tensors(settings, inputs);
    this.running.set(session, (this.running.get(session) ?? 0) + 1);
    try {
      return plainOutputs(await session.run(feeds));
    } finally {
      const left = (this.running.get(session) ?? 1) - 1;
      if (left > 0) {
        this.running.set(session, left);
      } else {
        this.running.delete(session);
        const release = this.retired.get(session);
        if (release !== undefined) {
          this.retired.delete(session);
          release();
        }
      }
    }
  }

  /**
   * The device stage alone, sending nothing: {outputs, confidence, threshold, escalate,
   * label, labels, probabilities (the score tensor's first row, softmax applied to
   * logits)}. What infer() decides from before it escalates.
   */
  async local(inputs) {
    const settings = this.settings;
    const outputs = await this.run(this.session, settings, inputs);
    const stage = settings.stage;
    const confidence = requestConfidence(outputs, stage);
    const rows = scoreRows(outputs, stage).rows;
    const found = labels(outputs, stage);
    return {
      outputs,
      confidence,
      threshold: stage.threshold,
      escalate: escalates(confidence, stage.threshold),
      label: found[0],
      labels: found,
      probabilities: rows[0],
    };
  }

  /**
   * Answer one request: {name: {data, dims}} per model input. Options: deferrable
   * (default: the workload's urgency), deadlineMs. Resolves to {label, labels, tier,
   * confidence, threshold, degraded, degradedReason, escalated, latencyMs, outputs,
   * version, queued (its idempotency key when queued), deferredId, traceId}.
   */
  async infer(inputs, { deferrable = null, deadlineMs = null } = {}) {
    const t0 = performance.now();
    const settings = this.settings;
    const session = this.session; // an update swapping in mid-call does not touch this one
    const outputs = await this.run(session, settings, inputs);
    const stage = settings.stage;
    const confidence = requestConfidence(outputs, stage);
    const device = {
      tier: settings.tier,
      confidence,
      threshold: stage.threshold,
      outputs,
      version: this.version,
      escalated: false,
      degraded: false,
      degradedReason: null,
    };
    const answer = (fields) => {
      const out = { ...device, ...fields };
      try {
        out.labels = labels(out.outputs, out.scoreStage ?? stage);
      } catch (err) {
        if (!(err instanceof RuleError)) throw err;
        out.labels = null; // another tier's outputs hold no score tensor the page can read
      }
      out.label = out.labels?.[0] ?? null;
      out.latencyMs = performance.now() - t0;
      delete out.scoreStage;
      return out;
    };
    if (!escalates(confidence, stage.threshold)) {
      const done = answer({});
      this.telemetry.count("answered", done.latencyMs);
      return done;
    }
    if (!settings.escalate) {
      const done = answer({ degraded: true, degradedReason: `privacy: ${settings.stays_on_device}` });
      this.telemetry.count("degraded", done.latencyMs);
      return done;
    }
    const wait = deadlineMs ?? this.deadlineMs ?? settings.deadline_ms ?? settings.escalate_timeout_ms;
    const isDeferrable = deferrable ?? settings.urgency === "deferrable";
    const key = isDeferrable ? idempotencyKey() : null;
    const request = this.escalation(settings, inputs, key, Math.max(1, wait - (performance.now() - t0)));
    try {
      const remote = await this.send(request, Math.max(1, wait - (performance.now() - t0)));
      if (remote.deferredId !== undefined) {
        const done = answer({ degraded: true, degradedReason: "deferred by the gateway", deferredId: remote.deferredId });
        this.telemetry.count("deferred", done.latencyMs);
        return done;
      }
      const scores = asScoreTensors(remote.outputs);
      let remoteConfidence = null;
      let scoreStage = { ...stage, output: stage.output in scores ? stage.output : null };
      try {
        remoteConfidence = requestConfidence(scores, scoreStage);
      } catch {
        scoreStage = stage;
      }
      const done = answer({
        tier: remote.parameters.tier ?? "gateway",
        confidence: remoteConfidence,
        threshold: null,
        outputs: scores,
        escalated: true,
        degraded: remote.parameters.degraded === true,
        degradedReason: remote.parameters.degraded_reason ?? null,
        traceId: remote.parameters.trace_id ?? null,
        scoreStage,
      });
      this.telemetry.count("escalated", done.latencyMs);
      this.flush(); // the link works: send what waited
      return done;
    } catch (err) {
      const link = err instanceof LinkError
        ? err
        : new LinkError("error", `the gateway's answer could not be read (${err.message})`, { retry: false });
      let queued = null;
      if (isDeferrable && link.retry && this.outbox !== null) {
        try {
          await this.outbox.put({ key, workload: this.workload, ...request, queuedMs: Date.now() });
          queued = key;
          this.dispatchEvent(new CustomEvent("queued", { detail: { key } }));
        } catch (full) {
          if (!(full instanceof OutboxFullError)) throw full;
        }
      }
      const done = answer({ degraded: true, degradedReason: `${link.reason}: ${link.message}`, queued });
      this.telemetry.count(queued !== null ? "deferred" : "degraded", done.latencyMs);
      return done;
    }
  }

  escalation(settings, inputs, key, deadlineMs) {
    // deferrable work has no interactive deadline: it may wait in the page or the outbox
    const parameters = key === null
      ? { escalated_from: settings.tier, deadline_ms: Math.ceil(deadlineMs) }
      : { escalated_from: settings.tier, idempotency_key: key, urgency: "deferrable" };
    const tensors = settings.model.inputs.map((spec) => ({
      name: spec.name,
      datatype: spec.datatype,
      shape: inputs[spec.name].dims,
      data: typedInput(spec, inputs[spec.name].data),
    }));
    const { body, headers } = encodeRequest({ inputs: tensors, parameters, binary: settings.binary_tensor_data });
    return { path: settings.infer_path, body, headers };
  }

  /** POST one escalation: its answer, or a LinkError when the gateway gave none. */
  async send(request, timeoutMs) {
    const fetch = (url, init) => this.fetch(url, init);
    return answerOf(await post(fetch, this.gateway, request, timeoutMs));
  }

  /** Send the queued deferrable requests, oldest first, each once; resolves to
   * {sent, dropped, left}. A request the gateway refuses for good (4xx) is dropped. */
  async flush() {
    if (this.outbox === null || this.outbox === undefined) return { sent: 0, dropped: 0, left: 0 };
    if (this.flushing === null) {
      const fetch = (url, init) => this.fetch(url, init);
      const send = (item) => post(fetch, this.gateway, item, DRAIN_TIMEOUT_MS);
      this.flushing = drainOutbox(this.outbox, send, this).finally(() => {
        this.flushing = null;
      });
    }
    return this.flushing;
  }

  async sendTelemetry(doc) {
    const response = await this.fetch(`${this.gateway}${this.settings.telemetry_path}`, {
      method: "POST",
      body: JSON.stringify(doc),
      headers: { "content-type": "application/json" },
      keepalive: true,
    });
    if (response.status === 422) {
      // refused for good (the gateway says why): sending it again would not help
      console.warn(`tierwise-device: telemetry report refused: ${(await response.text()).slice(0, 300)}`);
      return;
    }
    if (!response.ok) throw new Error(`telemetry: HTTP ${response.status}`);
  }

  /** Close the telemetry window and send the reports waiting; the number sent. */
  async flushTelemetry() {
    return this.telemetry.flush();
  }

  /**
   * Ask the gateway for the workload's device settings; a new model is fetched, checked
   * against its sha256, loaded and warmed before it replaces the current one. Resolves to
   * {updated, version, error}; a model that fails its check is refused and the current
   * one keeps serving.
   */
  async checkForUpdate() {
    if (this.updating === null) {
      this.updating = this.update().finally(() => {
        this.updating = null;
      });
    }
    return this.updating;
  }

  async update() {
    let settings;
    try {
      settings = await this.fetchSettings();
    } catch (err) {
      return { updated: false, version: this.version, error: err.message };
    }
    if (settings.model.sha256 === this.settings.model.sha256) {
      this.settings = { ...settings }; // thresholds and privacy may change without a new model
      return { updated: false, version: this.version, error: null };
    }
    try {
      await this.activate(settings);
    } catch (err) {
      this.dispatchEvent(new CustomEvent("refused", { detail: { version: settings.model.version, error: err.message } }));
      return { updated: false, version: this.version, error: err.message };
    }
    return { updated: true, version: this.version, error: null };
  }

  close() {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.outbox?.close();
  }
}
