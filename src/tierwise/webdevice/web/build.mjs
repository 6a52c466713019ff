// Copies the onnxruntime-web files the page loads into vendor/, which the tierwise
// gateway serves at /device/vendor/: the WASM build (always) and the WebGPU build (used
// when the browser offers an adapter). Nothing is fetched from a CDN at run time.
import { copyFileSync, mkdirSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "node_modules", "onnxruntime-web", "dist");
const vendor = join(here, "vendor");

export const VENDOR_FILES = [
  "ort.wasm.min.mjs",
  "ort-wasm-simd-threaded.mjs",
  "ort-wasm-simd-threaded.wasm",
  "ort.webgpu.min.mjs",
  "ort-wasm-simd-threaded.asyncify.mjs",
  "ort-wasm-simd-threaded.asyncify.wasm",
];

rmSync(vendor, { recursive: true, force: true });
mkdirSync(vendor, { recursive: true });
let total = 0;
for (const name of VENDOR_FILES) {
  const from = join(dist, name);
  try {
    total += statSync(from).size;
  } catch {
    console.error(`tierwise-device build: ${from} is missing; run npm ci first`);
    process.exit(1);
  }
  copyFileSync(from, join(vendor, name));
}
console.log(`tierwise-device: ${VENDOR_FILES.length} runtime files (${(total / 1e6).toFixed(1)} MB) in vendor/`);
