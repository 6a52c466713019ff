// The device page's service worker: it keeps the page, the module and the WASM runtime
// so that the page opens and answers from the device with the gateway unreachable.
// Network first (a new page or runtime reaches users as soon as it is served), the kept
// copy when the network fails. Only the files listed below are handled; anything else
// (held-out rows, settings, models, inference, telemetry) goes to the network as it is.
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
  "link.js",
  "vendor/ort.wasm.min.mjs",
  "vendor/ort-wasm-simd-threaded.mjs",
  "vendor/ort-wasm-simd-threaded.wasm",
];
const SCOPE = new URL("./", self.location).pathname;
const KEPT = new Set(FILES.map((f) => new URL(f, self.location).pathname));

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
  if (event.request.method !== "GET" || url.origin !== self.location.origin || !KEPT.has(url.pathname)) {
    return; // not one of the page's own files (held-out rows, the API): the network, untouched
  }
  const key = url.pathname; // the page without its query
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(SHELL).then(async (cache) => {
            const kept = await cache.match(key); // rewritten only when the file changed
            const etag = copy.headers.get("etag");
            if (kept === undefined || etag === null || kept.headers.get("etag") !== etag) {
              await cache.put(key, copy);
            }
          });
        }
        return response;
      })
      .catch(() => caches.match(key).then((hit) => hit ?? Response.error())),
  );
});
