// The Open Inference Protocol (V2) on the wire, for the page's escalations: requests as
// JSON or with the binary tensor extension (a JSON header, then each tensor's raw
// little-endian bytes, the header's length in Inference-Header-Content-Length), and
// responses in either form.

import { halfToFloat } from "./rules.js";

export { halfToFloat };
export const HEADER_LENGTH = "Inference-Header-Content-Length";

/** The typed array holding each V2 datatype's values (FP16 as its raw bits; BOOL as bytes),
 * which is also what onnxruntime-web's tensors hold. */
export const ARRAYS = {
  BOOL: Uint8Array,
  UINT8: Uint8Array,
  INT8: Int8Array,
  UINT16: Uint16Array,
  INT16: Int16Array,
  UINT32: Uint32Array,
  INT32: Int32Array,
  UINT64: BigUint64Array,
  INT64: BigInt64Array,
  FP16: Uint16Array, // raw half floats; decoded to float32 on the way in
  FP32: Float32Array,
  FP64: Float64Array,
};

/** V2 datatype names by onnxruntime-web tensor type. */
export const DATATYPE_OF = {
  bool: "BOOL",
  uint8: "UINT8",
  int8: "INT8",
  uint16: "UINT16",
  int16: "INT16",
  uint32: "UINT32",
  int32: "INT32",
  uint64: "UINT64",
  int64: "INT64",
  float16: "FP16",
  float32: "FP32",
  float64: "FP64",
};

/** onnxruntime-web tensor types by V2 datatype. */
export const TYPE_OF = Object.fromEntries(Object.entries(DATATYPE_OF).map(([k, v]) => [v, k]));

export class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = "ProtocolError";
  }
}

function elements(shape) {
  return shape.reduce((a, b) => a * b, 1);
}

function jsonValues(datatype, data) {
  if (datatype === "BOOL") return Array.from(data, (v) => Boolean(v));
  if (datatype === "INT64" || datatype === "UINT64") return Array.from(data, (v) => Number(v));
  if (datatype === "FP16") return Array.from(halfToFloat(data));
  return Array.from(data);
}

/**
 * A V2 request. `inputs`: [{name, datatype, shape, data (a typed array)}]. With `binary`,
 * the tensors travel as raw bytes and the outputs are asked for the same way.
 * Returns {body (Uint8Array or string), headers}.
 */
export function encodeRequest({ inputs, parameters = {}, id = undefined, binary = false }) {
  const head = { parameters: { ...parameters }, inputs: [] };
  if (id !== undefined) head.id = id;
  for (const t of inputs) {
    if (elements(t.shape) !== t.data.length) {
      throw new ProtocolError(
        `input '${t.name}': shape [${t.shape}] holds ${elements(t.shape)} values, data has ${t.data.length}`,
      );
    }
  }
  if (!binary) {
    head.inputs = inputs.map((t) => ({
      name: t.name,
      datatype: t.datatype,
      shape: t.shape,
      data: jsonValues(t.datatype, t.data),
    }));
    return { body: JSON.stringify(head), headers: { "content-type": "application/json" } };
  }
  head.parameters.binary_data_output = true;
  const chunks = [];
  for (const t of inputs) {
    const bytes =
      t.datatype === "BOOL"
        ? Uint8Array.from(t.data, (v) => (v ? 1 : 0))
        : new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    head.inputs.push({
      name: t.name,
      datatype: t.datatype,
      shape: t.shape,
      parameters: { binary_data_size: bytes.byteLength },
    });
    chunks.push(bytes);
  }
  const header = new TextEncoder().encode(JSON.stringify(head));
  const total = header.byteLength + chunks.reduce((n, c) => n + c.byteLength, 0);
  const body = new Uint8Array(total);
  body.set(header, 0);
  let at = header.byteLength;
  for (const c of chunks) {
    body.set(c, at);
    at += c.byteLength;
  }
  return {
    body,
    headers: {
      "content-type": "application/octet-stream",
      [HEADER_LENGTH]: String(header.byteLength),
    },
  };
}

function flatten(values) {
  return Array.isArray(values) && values.some(Array.isArray) ? values.flat(Infinity) : values;
}

function typed(datatype, values) {
  const Array_ = ARRAYS[datatype];
  if (Array_ === undefined) throw new ProtocolError(`unsupported datatype ${datatype}`);
  if (datatype === "FP16") return Float32Array.from(values);
  if (Array_ === BigInt64Array || Array_ === BigUint64Array) {
    return Array_.from(values, (v) => BigInt(v));
  }
  return Array_.from(values, (v) => (typeof v === "boolean" ? Number(v) : v));
}

/**
 * A V2 response from its bytes (an ArrayBuffer or Uint8Array); `headerLength` is the
 * Inference-Header-Content-Length header's value (null: all JSON). Returns
 * {model_name, model_version, id, parameters, outputs: {name: {datatype, shape, data}}},
 * data as a typed array (FP16 decoded to float32).
 */
export function decodeResponse(bytes, headerLength = null) {
  const buffer = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const length = headerLength === null ? buffer.byteLength : Number(headerLength);
  if (!Number.isInteger(length) || length < 0 || length > buffer.byteLength) {
    throw new ProtocolError(`${HEADER_LENGTH} ${headerLength} does not fit a ${buffer.byteLength}-byte body`);
  }
  let doc;
  try {
    doc = JSON.parse(new TextDecoder().decode(buffer.subarray(0, length)));
  } catch (err) {
    throw new ProtocolError(`the response header is not JSON: ${err.message}`);
  }
  if (doc === null || typeof doc !== "object" || !Array.isArray(doc.outputs)) {
    throw new ProtocolError("the response has no outputs list");
  }
  const outputs = Object.create(null); // output names are the server's: no prototype to set
  let at = length;
  for (const out of doc.outputs) {
    const shape = out.shape ?? [];
    const size = out.parameters?.binary_data_size;
    let data;
    if (size !== undefined && size !== null) {
      const Array_ = ARRAYS[out.datatype];
      if (Array_ === undefined) throw new ProtocolError(`unsupported datatype ${out.datatype}`);
      if (!Number.isInteger(size) || size < 0 || size % Array_.BYTES_PER_ELEMENT !== 0) {
        throw new ProtocolError(
          `output '${out.name}': binary_data_size ${size} is not a whole number of ${out.datatype} values`,
        );
      }
      if (at + size > buffer.byteLength) {
        throw new ProtocolError(`output '${out.name}' claims ${size} bytes past the body's end`);
      }
      const slice = buffer.slice(at, at + size); // copied: aligned for the typed array
      at += size;
      data = new Array_(slice.buffer, 0, size / Array_.BYTES_PER_ELEMENT);
      if (out.datatype === "FP16") data = halfToFloat(data);
    } else {
      data = typed(out.datatype, flatten(out.data ?? []));
    }
    if (data.length !== elements(shape)) {
      throw new ProtocolError(`output '${out.name}': shape [${shape}] but ${data.length} values`);
    }
    outputs[out.name] = { datatype: out.datatype, shape, data };
  }
  if (at !== buffer.byteLength) {
    throw new ProtocolError(`${buffer.byteLength - at} bytes after the last output`);
  }
  return {
    model_name: doc.model_name,
    model_version: doc.model_version ?? null,
    id: doc.id ?? null,
    parameters: doc.parameters ?? {},
    outputs,
  };
}

/** Outputs decoded from V2 as the rules read them: {name: {dims, type, data}}. */
export function asScoreTensors(outputs) {
  const out = {};
  for (const [name, t] of Object.entries(outputs)) {
    const type = t.datatype === "FP16" ? "float32" : TYPE_OF[t.datatype];
    out[name] = { dims: t.shape, type, data: t.data };
  }
  return out;
}
