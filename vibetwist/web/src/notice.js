// What the page says about a session event of /api/events, and which kinds this
// browser wants to hear of. Pure, so tests/test_web_logic.py checks that a toast says
// what the daemon's push notification for the same event says
// (vibetwist.model.webpush.notification).

// The kinds one may pick, as the daemon's /api/push/subscribe takes them.
export const KINDS = [
  ["session-start", "A session starts"],
  ["session-exit", "A session ends"],
  ["command-finished", "A long command finishes"],
  ["command-error", "A long command fails"],
  ["bell", "A program rings the bell"],
  ["needs-input", "A program waits for input"],
  ["claude-turn", "An agent waits for you"],
];
export const DEFAULT_KINDS = [
  "session-exit", "command-finished", "command-error", "bell", "needs-input", "claude-turn",
];
export const TEST = "test-notification";
// Every kind the page listens for on /api/events (named SSE events need a listener each).
export const STREAM_KINDS = [...KINDS.map(([kind]) => kind), TEST];
// The short word on a session's card for each kind.
export const BADGES = {
  "session-exit": "ended",
  "command-finished": "done",
  "command-error": "failed",
  bell: "bell",
  "needs-input": "needs input",
  "claude-turn": "your turn",
};

const MAX_TEXT = 300;

function clip(text, limit = MAX_TEXT) {
  const value = text === null || text === undefined ? "" : String(text);
  const chars = Array.from(value);
  return chars.length <= limit ? value : chars.slice(0, limit - 1).join("") + "\u2026";
}

// A duration in milliseconds in whole tenths, rounded down (as the daemon's push
// notification says it).
function took(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) return "";
  const tenths = Math.floor(ms / 100);
  if (tenths < 600) return `${Math.floor(tenths / 10)}.${tenths % 10} s`;
  const seconds = Math.floor(tenths / 10);
  return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
}

// {title, body, url} for an event's JSON.
export function describe(event) {
  const kind = String(event.type ?? "");
  const name = clip(event.sessionName || event.sessionId || "", 80);
  const command = clip(event.command || "", 120);
  const code = event.exitCode;
  const duration = took(event.duration);
  const where = duration ? `${command} (${duration}) in ${name}` : `${command} in ${name}`;
  let title;
  let body;
  if (kind === "session-start") {
    [title, body] = ["Session started", command ? `${name}: ${command}` : name];
  } else if (kind === "session-exit") {
    title = code === 0 || code === null || code === undefined ? "Session ended" : `Session failed (exit ${code})`;
    body = command ? `${name}: ${command}` : name;
  } else if (kind === "command-finished") {
    [title, body] = ["Command finished", where];
  } else if (kind === "command-error") {
    title = code !== null && code !== undefined ? `Command failed (exit ${code})` : "Command failed";
    body = where;
  } else if (kind === "bell") {
    [title, body] = ["Bell", name];
  } else if (kind === "needs-input") {
    [title, body] = ["Waiting for input", name];
  } else if (kind === TEST) {
    title = clip(event.title || "vibetwist", 80);
    body = clip(event.body || event.message || "Test notification");
  } else {
    title = clip(event.title || kind, 80);
    body = clip(event.body || event.message || name);
  }
  const url = typeof event.sessionId === "string" ? `/#session=${event.sessionId}` : "/";
  return { title, body: clip(body), url };
}

// The kinds picked, from what was stored (a JSON array), or the default ones.
export function pickedKinds(stored) {
  try {
    const value = JSON.parse(stored);
    if (Array.isArray(value)) return KINDS.map(([kind]) => kind).filter((kind) => value.includes(kind));
  } catch {
    // nothing stored, or something else: the default
  }
  return [...DEFAULT_KINDS];
}

// Whether the page shows an event: a test always, else if its kind was picked.
export function wanted(kind, picked) {
  return kind === TEST || picked.includes(kind);
}

// The applicationServerKey for PushManager.subscribe from the daemon's base64url key.
export function keyBytes(base64url) {
  const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (base64url.length % 4)) % 4);
  const raw = atob(base64);
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}
