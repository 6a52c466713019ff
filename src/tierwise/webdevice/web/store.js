// What the page keeps across reloads: verified models in Cache Storage, and deferrable
// requests that could not be sent in IndexedDB (the page's outbox).

export class IntegrityError extends Error {
  constructor(message) {
    super(message);
    this.name = "IntegrityError";
  }
}

function needSecureContext(what) {
  if (globalThis.crypto?.subtle === undefined) {
    throw new IntegrityError(
      `${what} needs Web Crypto, which browsers give secure contexts only: open the page` +
        " over HTTPS (the gateway's tls:) or on localhost",
    );
  }
}

/** The sha256 of `bytes` as lowercase hex (Web Crypto). */
export async function sha256Hex(bytes) {
  needSecureContext("checking a model's sha256");
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Throws IntegrityError unless `bytes` are `sizeBytes` long and hash to `sha256`. */
export async function verify(bytes, sha256, sizeBytes, what) {
  if (sizeBytes !== undefined && sizeBytes !== null && bytes.byteLength !== sizeBytes) {
    throw new IntegrityError(`${what}: expected ${sizeBytes} bytes, got ${bytes.byteLength} (truncated or replaced)`);
  }
  const found = await sha256Hex(bytes);
  if (found !== sha256) {
    throw new IntegrityError(`${what}: expected sha256 ${sha256}, got ${found}; refused`);
  }
}

/**
 * A model's bytes, checked against its manifest digest before anything uses them: from
 * Cache Storage when a copy is there and still verifies, else fetched, verified and
 * then cached. A copy that fails the check is dropped, never used.
 */
export async function verifiedModel({ url, sha256, sizeBytes, fetch, headers = {}, cacheName }) {
  needSecureContext("loading a model");
  const cache = globalThis.caches === undefined ? null : await caches.open(cacheName);
  const key = new URL(url, globalThis.location?.href).href;
  if (cache !== null) {
    const hit = await cache.match(key);
    if (hit !== undefined) {
      const bytes = new Uint8Array(await hit.arrayBuffer());
      try {
        await verify(bytes, sha256, sizeBytes, "the cached model");
        return { bytes, cached: true };
      } catch {
        await cache.delete(key);
      }
    }
  }
  const response = await fetch(url, { headers, cache: "no-store" });
  if (!response.ok) {
    throw new Error(`fetching the model ${url}: HTTP ${response.status}`);
  }
  const bytes = new Uint8Array(await response.arrayBuffer());
  await verify(bytes, sha256, sizeBytes, `the model at ${url}`);
  if (cache !== null) {
    await cache.put(key, new Response(bytes, { headers: { "content-type": "application/octet-stream" } }));
  }
  return { bytes, cached: false };
}

/** Drop the cached models under `prefix` (one workload's) but those in `keep`. */
export async function pruneModels(cacheName, prefix, keep) {
  if (globalThis.caches === undefined) return;
  const cache = await caches.open(cacheName);
  const base = globalThis.location?.href;
  const under = new URL(prefix, base).href;
  const wanted = new Set(keep.map((u) => new URL(u, base).href));
  for (const request of await cache.keys()) {
    if (request.url.startsWith(under) && !wanted.has(request.url)) await cache.delete(request);
  }
}

function promised(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

export class OutboxFullError extends Error {
  constructor(max) {
    super(`the page's outbox holds its maximum of ${max} requests; this one was not queued`);
    this.name = "OutboxFullError";
  }
}

/**
 * Deferrable requests waiting for the link, in IndexedDB (oldest first). Each item:
 * {key (its idempotency key), workload, path, body, headers, queuedMs}. An item is
 * removed only once the gateway took it, so a reload or a crash loses none.
 */
export class Outbox {
  static async open(name = "tierwise-device", maxItems = 1000) {
    const request = indexedDB.open(name, 1);
    request.onupgradeneeded = () => {
      const store = request.result.createObjectStore("outbox", { keyPath: "seq", autoIncrement: true });
      store.createIndex("key", "key", { unique: true });
    };
    return new Outbox(await promised(request), maxItems);
  }

  constructor(db, maxItems) {
    this.db = db;
    this.maxItems = maxItems;
  }

  store(mode) {
    return this.db.transaction("outbox", mode).objectStore("outbox");
  }

  async count() {
    return promised(this.store("readonly").count());
  }

  async put(item) {
    if ((await this.count()) >= this.maxItems) throw new OutboxFullError(this.maxItems);
    const tx = this.db.transaction("outbox", "readwrite");
    tx.objectStore("outbox").add(item);
    await new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }

  async list() {
    return promised(this.store("readonly").getAll());
  }

  async remove(seq) {
    const tx = this.db.transaction("outbox", "readwrite");
    tx.objectStore("outbox").delete(seq);
    await new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
    });
  }

  close() {
    this.db.close();
  }
}
