// V2 requests and responses as the tierwise gateway reads and writes them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeResponse, encodeRequest, halfToFloat, HEADER_LENGTH, ProtocolError } from "../v2.js";

test("a JSON request carries flat data and the parameters", () => {
  const { body, headers } = encodeRequest({
    inputs: [{ name: "image", datatype: "FP32", shape: [1, 2, 2], data: Float32Array.from([0, 0.5, 1, 0.25]) }],
    parameters: { escalated_from: "device" },
  });
  assert.equal(headers["content-type"], "application/json");
  const doc = JSON.parse(body);
  assert.deepEqual(doc.inputs[0], { name: "image", datatype: "FP32", shape: [1, 2, 2], data: [0, 0.5, 1, 0.25] });
  assert.equal(doc.parameters.escalated_from, "device");
});

test("a binary request puts raw little-endian bytes after the JSON header", () => {
  const data = Float32Array.from([1.5, -2]);
  const ids = BigInt64Array.from([7n]);
  const { body, headers } = encodeRequest({
    inputs: [
      { name: "x", datatype: "FP32", shape: [1, 2], data },
      { name: "ids", datatype: "INT64", shape: [1, 1], data: ids },
    ],
    binary: true,
  });
  const length = Number(headers[HEADER_LENGTH]);
  const head = JSON.parse(new TextDecoder().decode(body.subarray(0, length)));
  assert.equal(head.parameters.binary_data_output, true);
  assert.deepEqual(head.inputs.map((i) => i.parameters.binary_data_size), [8, 8]);
  assert.deepEqual(Array.from(new Float32Array(body.slice(length, length + 8).buffer)), [1.5, -2]);
  assert.equal(new BigInt64Array(body.slice(length + 8).buffer)[0], 7n);
});

test("a shape that does not hold the data is refused", () => {
  assert.throws(
    () => encodeRequest({ inputs: [{ name: "x", datatype: "FP32", shape: [2, 2], data: new Float32Array(3) }] }),
    ProtocolError,
  );
});

test("responses decode from JSON and from the binary extension", () => {
  const json = new TextEncoder().encode(
    JSON.stringify({ model_name: "w", parameters: { tier: "edge" }, outputs: [{ name: "p", datatype: "FP32", shape: [1, 2], data: [[0.25, 0.75]] }] }),
  );
  const a = decodeResponse(json);
  assert.equal(a.parameters.tier, "edge");
  assert.deepEqual(Array.from(a.outputs.p.data), [0.25, 0.75]);

  const raw = Float32Array.from([0.125, 0.875]);
  const head = new TextEncoder().encode(
    JSON.stringify({ model_name: "w", outputs: [{ name: "p", datatype: "FP32", shape: [1, 2], parameters: { binary_data_size: 8 } }] }),
  );
  const body = new Uint8Array(head.length + 8);
  body.set(head);
  body.set(new Uint8Array(raw.buffer), head.length);
  const b = decodeResponse(body, String(head.length));
  assert.deepEqual(Array.from(b.outputs.p.data), [0.125, 0.875]);
  assert.throws(() => decodeResponse(body.subarray(0, head.length + 4), String(head.length)), /past the body's end/);
  assert.throws(() => decodeResponse(body, "99999"), ProtocolError);
});

test("half floats decode", () => {
  assert.deepEqual(Array.from(halfToFloat(Uint16Array.from([0x3c00, 0xc000, 0x3800, 0x7c00]))), [1, -2, 0.5, Infinity]);
});

test("binary sizes that are not whole values, or bytes left over, are refused", () => {
  const head = (size) =>
    new TextEncoder().encode(
      JSON.stringify({ outputs: [{ name: "p", datatype: "FP32", shape: [1, 1], parameters: { binary_data_size: size } }] }),
    );
  for (const [size, extra, pattern] of [[3, 3, /whole number/], [-4, 4, /whole number/], [4, 8, /after the last output/]]) {
    const h = head(size);
    const body = new Uint8Array(h.length + extra);
    body.set(h);
    assert.throws(() => decodeResponse(body, String(h.length)), pattern);
  }
});

test("an output named __proto__ is just an output", () => {
  const json = new TextEncoder().encode(
    JSON.stringify({ outputs: [{ name: "__proto__", datatype: "FP32", shape: [1], data: [1] }] }),
  );
  const r = decodeResponse(json);
  assert.equal(Object.getPrototypeOf(r.outputs), null);
  assert.deepEqual(Array.from(r.outputs["__proto__"].data), [1]);
});
