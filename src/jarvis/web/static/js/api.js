// Talking to the server: JSON requests, SSE streams read with fetch (EventSource cannot send
// the API key), and the WebSocket with the key as its `bearer.<key>` subprotocol.
// The key is kept in sessionStorage: for this tab only.

const KEY = "jarvis.apiKey";

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || (status ? `http_${status}` : "network");
    this.details = details;
  }
}

export const auth = {
  get key() { return sessionStorage.getItem(KEY) || ""; },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
  onUnauthorized: null, // set by main.js: show the sign-in form
};

function headers(extra = {}) {
  const out = { ...extra };
  if (auth.key) out.Authorization = `Bearer ${auth.key}`;
  return out;
}

async function errorOf(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  const error = body && body.error;
  if (error && typeof error === "object") {
    const { code, message, ...details } = error;
    return new ApiError(response.status, code, message, details);
  }
  return new ApiError(response.status, null, typeof error === "string" ? error : response.statusText);
}

/** A JSON request; resolves to the parsed body, rejects with ApiError. */
export async function api(path, { method = "GET", body, signal, quiet401 = false } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      signal,
      headers: headers(body === undefined ? { Accept: "application/json" } : { Accept: "application/json", "Content-Type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network", error.message);
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && !quiet401 && auth.onUnauthorized) auth.onUnauthorized(error);
    throw error;
  }
  return response.status === 204 ? null : response.json();
}

/**
 * Follow an SSE stream until `signal` aborts: `onEvent(type, data)` per event (data parsed as
 * JSON). Reconnects after a failure; `onState("open"|"retrying", error?)` tells the caller.
 */
export async function follow(path, { onEvent, onState = () => {}, signal }) {
  let delay = 500;
  while (!signal.aborted) {
    try {
      const response = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), signal });
      if (!response.ok) throw await errorOf(response);
      onState("open");
      delay = 500;
      await readEvents(response.body, onEvent);
    } catch (error) {
      if (signal.aborted || error.name === "AbortError") return;
      onState("retrying", error);
      if (error.status === 401 || error.status === 403) return;
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 10_000);
  }
}

async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    // a lone "\r" at the end may be the first half of "\r\n": keep it for the next chunk
    buffer = (buffer + value).replace(/\r\n|\r(?!$)/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue; // a keep-alive comment
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") type = text;
        else if (field === "data") data.push(text);
      }
      if (!data.length) continue;
      let parsed = data.join("\n");
      try { parsed = JSON.parse(parsed); } catch { /* plain text data */ }
      onEvent(type, parsed);
    }
  }
}

/** The chat WebSocket; the key travels as the subprotocol `bearer.<key>`. */
export function openSocket() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const protocols = auth.key ? ["jarvis", `bearer.${auth.key}`] : ["jarvis"];
  return new WebSocket(`${scheme}://${location.host}/ws`, protocols);
}
