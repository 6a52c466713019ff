// The page's link to the gateway: escalations as V2 requests, and the outbox of
// deferrable ones that waited for the link. A LinkError says why no answer came.

import { decodeResponse, HEADER_LENGTH } from "./v2.js";

/** How long one queued request may take when the outbox is sent (ms). */
export const DRAIN_TIMEOUT_MS = 30000;

export class LinkError extends Error {
  constructor(reason, message, { status = null, retry = true } = {}) {
    super(message);
    this.name = "LinkError";
    this.reason = reason; // offline | deadline | unavailable | refused
    this.status = status;
    this.retry = retry; // worth sending again later (a deferrable request is queued)
  }
}

function errorOf(body) {
  try {
    return JSON.parse(new TextDecoder().decode(body)).error ?? "";
  } catch {
    return "";
  }
}

/**
 * POST one request ({path, body, headers}) through `fetch`, the whole exchange (body
 * included) bounded by `timeoutMs`. Resolves to {status, body, headerLength}; a
 * LinkError when no reply came, or the reply says the gateway could not answer.
 */
export async function post(fetch, base, request, timeoutMs) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const response = await fetch(`${base}${request.path}`, {
      method: "POST",
      body: request.body,
      headers: request.headers,
      signal: controller.signal,
    });
    const body = new Uint8Array(await response.arrayBuffer());
    const status = response.status;
    if (status === 408) throw new LinkError("deadline", errorOf(body) || "the gateway's deadline passed", { status });
    if (status === 429 || status >= 500) {
      throw new LinkError("unavailable", `HTTP ${status} ${errorOf(body)}`.trim(), { status });
    }
    if (status >= 400) {
      throw new LinkError("refused", `HTTP ${status} ${errorOf(body)}`.trim(), { status, retry: false });
    }
    return { status, body, headerLength: response.headers.get(HEADER_LENGTH) };
  } catch (err) {
    if (err instanceof LinkError) throw err;
    if (err.name === "AbortError") {
      throw new LinkError("deadline", `no answer from the gateway within ${Math.round(timeoutMs)} ms`);
    }
    throw new LinkError("offline", `the gateway cannot be reached (${err.message})`);
  } finally {
    clearTimeout(timer);
  }
}

/** A 2xx reply read: {deferredId} for a 202, else the decoded V2 response. */
export function answerOf(reply) {
  if (reply.status === 202) {
    const doc = JSON.parse(new TextDecoder().decode(reply.body));
    return { deferredId: doc.id };
  }
  return decodeResponse(reply.body, reply.headerLength);
}

/**
 * Send the outbox's requests, oldest first. An item leaves the outbox once the gateway
 * took it (any 2xx, whatever its body) or refused it for good (4xx); the first that
 * meets a down link stops the round, so order is kept. `events` gets "delivered" and
 * "dropped". Resolves to {sent, dropped, left}.
 */
export async function drainOutbox(outbox, send, events) {
  let sent = 0;
  let dropped = 0;
  for (const item of await outbox.list()) {
    try {
      await send(item);
    } catch (err) {
      if (err instanceof LinkError && !err.retry) {
        await outbox.remove(item.seq);
        dropped += 1;
        events.dispatchEvent(new CustomEvent("dropped", { detail: { key: item.key, error: err.message } }));
        continue;
      }
      break;
    }
    await outbox.remove(item.seq);
    sent += 1;
    events.dispatchEvent(new CustomEvent("delivered", { detail: { key: item.key } }));
  }
  return { sent, dropped, left: await outbox.count() };
}
