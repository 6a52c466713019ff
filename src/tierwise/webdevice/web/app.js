// The gateway's demo page (/device/): draw a digit or pick a held-out row, and see the
// answer, the tier that gave it, its confidence and latency; the switch cuts the link.
import { DeviceTier } from "./tierwise-device.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const token = params.get("token") ?? sessionStorage.getItem("tierwise-token");
if (token) sessionStorage.setItem("tierwise-token", token);
if (params.has("token")) {
  // out of the address bar and the history: the tab's session storage keeps it
  params.delete("token");
  history.replaceState(null, "", `${location.pathname}${params.size ? `?${params}` : ""}`);
}
const auth = token ? { authorization: `Bearer ${token}` } : {};

const state = { tier: null, samples: null, next: 0, pixels: null };
window.tierwise = state; // for tests and the console

function show(answer) {
  $("label").textContent = answer.label ?? "?";
  $("tier").textContent = answer.escalated ? `${answer.tier} (escalated)` : `${answer.tier} (in the page)`;
  $("confidence").textContent = answer.confidence === null ? "–" : answer.confidence.toFixed(3);
  $("latency").textContent = `${answer.latencyMs.toFixed(1)} ms`;
  const stateText = answer.degraded
    ? `degraded — ${answer.degradedReason}${answer.queued ? " (queued for the link)" : ""}`
    : "answered";
  $("state").textContent = stateText;
  $("state").className = answer.degraded ? "degraded" : "fine";
}

async function refreshFooter() {
  const tier = state.tier;
  if (tier === null) return;
  $("model").textContent = `model ${tier.version} · ${tier.runtime.backend}`;
  const waiting = tier.outbox ? await tier.outbox.count() : 0;
  $("outbox").textContent = waiting ? `${waiting} waiting for the link` : "";
}

// --- drawing: white strokes on black, averaged down to the model's 8 x 8 pixels ---------
const pad = $("pad");
const ctx = pad.getContext("2d");
function clear() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
  state.pixels = null;
}
clear();
let drawing = false;
function point(event) {
  const box = pad.getBoundingClientRect();
  return [((event.clientX - box.left) * pad.width) / box.width, ((event.clientY - box.top) * pad.height) / box.height];
}
pad.addEventListener("pointerdown", (e) => {
  drawing = true;
  ctx.beginPath();
  ctx.moveTo(...point(e));
});
pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = 18;
  ctx.lineCap = "round";
  ctx.lineTo(...point(e));
  ctx.stroke();
});
pad.addEventListener("pointerup", () => {
  drawing = false;
  state.pixels = null;
});

function canvasPixels(side) {
  const cell = pad.width / side;
  const image = ctx.getImageData(0, 0, pad.width, pad.height).data;
  const out = new Float32Array(side * side);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      let sum = 0;
      for (let dy = 0; dy < cell; dy++) {
        for (let dx = 0; dx < cell; dx++) sum += image[((y * cell + dy) * pad.width + x * cell + dx) * 4];
      }
      out[y * side + x] = sum / (cell * cell * 255);
    }
  }
  return out;
}

function paint(pixels, side) {
  const cell = pad.width / side;
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const v = Math.round(Math.max(0, Math.min(1, pixels[y * side + x])) * 255);
      ctx.fillStyle = `rgb(${v},${v},${v})`;
      ctx.fillRect(x * cell, y * cell, cell, cell);
    }
  }
}

/** The model's one input, if it is an 8 x 8 image (what the pad can draw). */
function imageInput() {
  const inputs = state.tier.settings.model.inputs;
  if (inputs.length !== 1) return null;
  const rest = inputs[0].shape.slice(1);
  return rest.reduce((a, b) => a * b, 1) === 64 ? inputs[0] : null;
}

function currentInputs() {
  const input = state.tier.settings.model.inputs[0];
  if (state.pixels !== null) return state.pixels;
  if (imageInput() === null) return null;
  const data = canvasPixels(8);
  return { [input.name]: { data, dims: [1, ...input.shape.slice(1).map((d) => (d > 0 ? d : 1))] } };
}

async function answer() {
  const inputs = currentInputs();
  if (inputs === null) {
    $("status").textContent = "this model's input is not an 8 x 8 image: pick a held-out row";
    return;
  }
  const result = await state.tier.infer(inputs);
  show(result);
  await refreshFooter();
}

function heldOut() {
  const sample = state.samples?.[state.tier.workload];
  if (!sample || sample.rows.length === 0) {
    $("sample-note").textContent = "the gateway has no held-out rows for this workload";
    return;
  }
  const i = state.next++ % sample.rows.length;
  const row = Float32Array.from(sample.rows[i]);
  state.pixels = { [sample.input]: { data: row, dims: [1, ...sample.dims] } };
  if (imageInput() !== null) paint(row, 8);
  $("sample-note").textContent = `held-out row ${i}${sample.labels ? ` (true label ${sample.labels[i]})` : ""}`;
}

async function open(workload) {
  state.tier?.close();
  state.tier = null;
  $("status").textContent = "loading the runtime and the model…";
  state.tier = await DeviceTier.open({ workload, token });
  state.tier.addEventListener("model", refreshFooter);
  state.tier.addEventListener("delivered", refreshFooter);
  state.tier.addEventListener("refused", (e) => {
    $("status").textContent = `update refused: ${e.detail.error}`;
  });
  pad.hidden = imageInput() === null;
  const offline = state.tier.startedOffline ? " (offline: the gateway cannot be reached)" : "";
  $("status").textContent = `ready in ${state.tier.coldStartMs.toFixed(0)} ms${offline}`;
  await refreshFooter();
}

$("clear").addEventListener("click", clear);
$("held-out").addEventListener("click", heldOut);
$("answer").addEventListener("click", () => answer().catch((e) => ($("status").textContent = e.message)));
$("link").addEventListener("change", (e) => {
  state.tier.linkCut = !e.target.checked;
  $("link-label").textContent = e.target.checked ? "link up" : "link cut";
  if (e.target.checked) state.tier.flush().then(refreshFooter);
});
$("workload").addEventListener("change", (e) => open(e.target.value));

async function workloads() {
  // the index, or (the gateway unreachable) what this page last saw of it
  try {
    const index = await fetch("/v2/device", { headers: auth });
    if (index.ok) {
      const doc = await index.json();
      localStorage.setItem("tierwise-device:index", JSON.stringify(doc));
      return { ok: true, doc };
    }
    return { ok: false, status: index.status };
  } catch (err) {
    const saved = localStorage.getItem("tierwise-device:index");
    if (saved) return { ok: true, doc: { ...JSON.parse(saved), samples: false }, offline: true };
    throw err;
  }
}

async function main() {
  navigator.serviceWorker?.register("sw.js").catch(() => {}); // opens offline next time
  const index = await workloads();
  if (!index.ok) {
    $("status").textContent = `the gateway's device index: HTTP ${index.status}${index.status === 401 ? " (open the page with ?token=...)" : ""}`;
    return;
  }
  const doc = index.doc;
  for (const name of doc.workloads) {
    const option = document.createElement("option");
    option.value = option.textContent = name;
    $("workload").append(option);
  }
  if (doc.samples) {
    const samples = await fetch("/device/samples.json", { headers: auth });
    if (samples.ok) state.samples = await samples.json();
  }
  const chosen = params.get("workload") ?? doc.workloads[0];
  if (chosen === undefined) {
    $("status").textContent = "no workload of this plan runs its first stage on a device";
    return;
  }
  $("workload").value = chosen;
  await open(chosen);
  state.readyAtMs = performance.now(); // since navigation started
  state.ready = true;
}

main().catch((e) => {
  $("status").textContent = e.message;
  state.error = e.message;
});
