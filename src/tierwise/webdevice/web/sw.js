// The device page's service worker: it keeps the page, the module and the WASM runtime
// so that the page opens and answers from the device with the gateway unreachable.
// Network first (a new page or runtime reaches users as soon as it is served), the kept
// copy when the network fails. Only the page's own files are handled; the gateway's API
// (settings, models, inference, telemetry) goes to the network as it is.
const SHELL = "tierwise-device-shell-v1";
const FILES = [
  "./",
  "index.html",
  "app.js",
  "style.css",
  "tierwise-device.js",
  "rules.js",
  "v2.js",
  "telemetry.js",
  "store.js",
  "vendor/ort.wasm.min.mjs",
  "vendor/ort-wasm-simd-threaded.mjs",
  "vendor/ort-wasm-simd-threaded.wasm",
];
const SCOPE = new URL("./", self.location).pathname;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL).then((cache) => cache.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("tierwise-device-shell-") && k !== SHELL).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin || !url.pathname.startsWith(SCOPE)) {
    return; // not the page's own file: the network, untouched
  }
  const key = url.pathname === SCOPE ? SCOPE : url.pathname; // the page without its query
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(SHELL).then((cache) => cache.put(key, copy));
        }
        return response;
      })
      .catch(() => caches.match(key).then((hit) => hit ?? Response.error())),
  );
});
