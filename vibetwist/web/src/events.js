// The daemon's session events (GET /api/events) in the page: a toast for each event
// of a kind this browser picked, and a badge on the session's card until the session
// is opened. One EventSource for the page's life; it reconnects by itself (sending
// Last-Event-ID), and is opened again when the login token changes.
import { BADGES, STREAM_KINDS, describe, pickedKinds, wanted } from "./notice.js";
import { showToast } from "./toasts.js";

const KINDS_KEY = "vibetwist.notify.kinds";

let source = null;
let sourceUrl = null;
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
  if (source && sourceUrl === url.href && source.readyState !== EventSource.CLOSED) return;
  if (source) source.close();
  sourceUrl = url.href;
  source = new EventSource(url.href);
  for (const kind of STREAM_KINDS) source.addEventListener(kind, received);
}
