// The page's telemetry reports, as the gateway's device telemetry endpoint takes them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { LATENCY_BOUNDS_MS, MAX_PENDING, Telemetry } from "../telemetry.js";

test("a window counts outcomes and buckets latency (le, one bucket over the last)", async () => {
  const sent = [];
  let now = 0;
  const t = new Telemetry({ deviceClass: "phone", workload: "digits", send: async (d) => sent.push(d), now: () => now });
  t.count("answered", 0.4);
  t.count("answered", 1);
  t.count("escalated", 30);
  t.count("degraded", 99999);
  now = 2000;
  assert.equal(await t.flush(), 1);
  const doc = sent[0];
  assert.equal(doc.window_s, 2);
  assert.deepEqual(doc.counts, { answered: 2, escalated: 1, degraded: 1 });
  assert.equal(doc.latency_ms.counts.length, LATENCY_BOUNDS_MS.length + 1);
  assert.equal(doc.latency_ms.counts[0], 2); // 0.4 and 1 ms: at most 1 ms
  assert.equal(doc.latency_ms.counts[LATENCY_BOUNDS_MS.indexOf(50)], 1);
  assert.equal(doc.latency_ms.counts.at(-1), 1);
  assert.match(doc.report_id, /^[A-Za-z0-9_.:-]{8,64}$/);
  assert.deepEqual(Object.keys(doc).sort(), ["counts", "device_class", "latency_ms", "report_id", "window_s", "workload"]);
  assert.equal(await t.flush(), 0); // nothing new: no empty report
});

test("a report that could not be sent is sent again under the same report_id", async () => {
  const sent = [];
  let up = false;
  const t = new Telemetry({
    deviceClass: "phone",
    workload: "digits",
    send: async (d) => {
      if (!up) throw new Error("offline");
      sent.push(d);
    },
  });
  t.count("degraded", 3);
  assert.equal(await t.flush(), 0);
  const id = t.pending[0].report_id;
  t.count("answered", 1);
  up = true;
  assert.equal(await t.flush(), 2);
  assert.equal(sent[0].report_id, id);
  assert.deepEqual(sent[1].counts, { answered: 1 });
});

test("past MAX_PENDING unsent reports the window keeps counting rather than growing the backlog", async () => {
  const t = new Telemetry({ deviceClass: "phone", workload: "digits", send: async () => { throw new Error("down"); } });
  for (let i = 0; i < MAX_PENDING + 5; i++) {
    t.count("answered", 1);
    await t.flush();
  }
  assert.equal(t.pending.length, MAX_PENDING);
  assert.equal(t.window.counts.answered, 5);
});

test("unknown outcomes are refused", () => {
  const t = new Telemetry({ deviceClass: "phone", workload: "digits", send: async () => {} });
  assert.throws(() => t.count("maybe"), /unknown outcome/);
});
