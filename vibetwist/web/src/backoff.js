// How long the page waits before connecting again. Pure, so tests/test_web_logic.py
// runs it under Node.
//
// A connection that failed or closed abnormally is tried again at once (a load
// balancer in front of several gateways sends the new one to a live gateway), then
// after a growing pause of at most a few seconds. A host a gateway cannot reach is
// asked again more slowly: it comes back in seconds if at all soon.

const STEP_MS = 500;
const MOST_MS = 4000;
const UNREACHABLE_STEP_MS = 2000;
const UNREACHABLE_MOST_MS = 15000;

// Milliseconds to wait before reconnection attempt n (1, 2, ...): 0, 500, 1000, 2000, 4000, 4000...
export function backoff(attempt) {
  if (!(attempt > 1)) return 0;
  return Math.min(STEP_MS * 2 ** (attempt - 2), MOST_MS);
}

// The same after the gateway said the session's host is unreachable: 2 s, 4 s, 8 s, 15 s...
export function unreachableBackoff(attempt) {
  const n = attempt > 1 ? attempt : 1;
  return Math.min(UNREACHABLE_STEP_MS * 2 ** (n - 1), UNREACHABLE_MOST_MS);
}

// Whether a /ws/sessions error frame says the session's host cannot be reached.
export function isUnreachable(message) {
  return typeof message === "string" && /^host .* is unreachable$/.test(message);
}
