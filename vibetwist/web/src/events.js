// The daemon's session events (GET /api/events) in the page: a toast for each event
// of a kind this browser picked, and a badge on the session's card until the session
// is opened. One stream for the page's life, opened again when the login token
// changes. When it fails (the daemon or gateway went away, or answered with an error,
// after which an EventSource would give up), it is opened again to the same URL, at
// once and then backing off, asking for the events after the last one seen
// (?lastEventId=, which the daemon reads as it reads Last-Event-ID).
import { backoff } from "./backoff.js";
import { BADGES, STREAM_KINDS, describe, pickedKinds, wanted } from "./notice.js";
import { showToast } from "./toasts.js";

const KINDS_KEY = "vibetwist.notify.kinds";

let source = null;
let sourceUrl = null;
let lastEventId = null;
let attempt = 0;
let retry = null;
// Session id -> the kind of its latest event not seen yet (for the card's badge).
const unseen = new Map();
const watchers = new Set();

export function storedKinds() {
  return pickedKinds(localStorage.getItem(KINDS_KEY));
}

export function storeKinds(kinds) {
  localStorage.setItem(KINDS_KEY, JSON.stringify(kinds));
}

// The word to show on a session's card, or null.
export function badgeOf(sessionId) {
  const kind = unseen.get(sessionId);
  return kind ? BADGES[kind] || kind : null;
}

export function badgeKind(sessionId) {
  return unseen.get(sessionId) || null;
}

// The session is open: its badge goes.
export function seen(sessionId) {
  if (unseen.delete(sessionId)) notify();
}

// Call onChange whenever a badge comes or goes; returns how to stop.
export function watchBadges(onChange) {
  watchers.add(onChange);
  return () => watchers.delete(onChange);
}

function notify() {
  for (const watcher of watchers) watcher();
}

function received(message) {
  if (message.lastEventId) lastEventId = message.lastEventId;
  let event;
  try {
    event = JSON.parse(message.data);
  } catch {
    return;
  }
  const kind = String(event.type || message.type);
  if (!wanted(kind, storedKinds())) return;
  const open = new URLSearchParams(location.hash.replace(/^#/, "")).get("session");
  if (event.sessionId && event.sessionId === open && document.visibilityState === "visible") return;
  if (event.sessionId && BADGES[kind]) {
    unseen.set(event.sessionId, kind);
    notify();
  }
  const { title, body, url } = describe(event);
  showToast({ kind, title, body, url });
}

// Follow the events with this api's token (again, if the token changed).
export function followEvents(api) {
  if (api.shareToken) return; // a share link sees one session only, and no events
  const url = new URL("/api/events", location.href);
  if (api.token) url.searchParams.set("token", api.token);
  if (source && sourceUrl === url.href) return;
  if (sourceUrl !== url.href) lastEventId = null;
  sourceUrl = url.href;
  attempt = 0;
  open();
}

function open() {
  clearTimeout(retry);
  if (source) source.close();
  const url = new URL(sourceUrl);
  if (lastEventId) url.searchParams.set("lastEventId", lastEventId);
  const mine = new EventSource(url.href);
  source = mine;
  for (const kind of STREAM_KINDS) mine.addEventListener(kind, received);
  mine.addEventListener("open", () => {
    attempt = 0;
  });
  mine.addEventListener("error", () => {
    if (source !== mine) return;
    mine.close();
    attempt += 1;
    retry = setTimeout(open, backoff(attempt));
  });
}
