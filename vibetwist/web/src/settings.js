// The notifications panel: which kinds of event this browser hears of (as toasts in
// the page, and as push notifications with the page closed), turning push on and off
// for this device, and a test. The service worker (sw.js) is registered at start so
// the page is an installable web app.
import { h } from "./dom.js";
import { storeKinds, storedKinds } from "./events.js";
import { KINDS, keyBytes } from "./notice.js";

const WORKER = "/static/sw.js";

export function registerWorker() {
  if (!("serviceWorker" in navigator)) return Promise.resolve(null);
  return navigator.serviceWorker.register(WORKER, { scope: "/" }).catch(() => null);
}

function pushSupported() {
  return window.isSecureContext && "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

async function currentSubscription() {
  if (!pushSupported()) return null;
  const registration = await navigator.serviceWorker.getRegistration("/");
  return registration ? registration.pushManager.getSubscription() : null;
}

function sameKey(subscription, key) {
  const had = subscription.options?.applicationServerKey;
  if (!had) return false;
  const bytes = new Uint8Array(had);
  return bytes.length === key.length && bytes.every((b, i) => b === key[i]);
}

async function enablePush(api, kinds) {
  if (!pushSupported()) {
    throw new Error("This browser cannot get push notifications here: it needs HTTPS (or localhost) and push support.");
  }
  const { publicKey } = await api.get("/api/push/vapid-public-key");
  const permission = await Notification.requestPermission();
  if (permission !== "granted") {
    throw new Error("Notifications are blocked for this page: allow them in the browser's site settings.");
  }
  await registerWorker();
  const registration = await navigator.serviceWorker.ready;
  const key = keyBytes(publicKey);
  let subscription = await registration.pushManager.getSubscription();
  if (subscription && !sameKey(subscription, key)) {
    await subscription.unsubscribe();
    subscription = null;
  }
  if (!subscription) {
    subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  }
  await api.post("/api/push/subscribe", { ...subscription.toJSON(), kinds });
}

async function disablePush(api) {
  const subscription = await currentSubscription();
  if (!subscription) return;
  await api.post("/api/push/unsubscribe", { endpoint: subscription.endpoint }).catch(() => {});
  await subscription.unsubscribe();
}

// Open the panel over the page; returns how to close it.
export function showSettings(api, notice) {
  const status = h("p", { className: "status-line", role: "status" });
  const pushState = h("p", { className: "push-state" });
  const boxes = KINDS.map(([kind, label]) => {
    const box = h("input", { type: "checkbox", name: "kind", value: kind });
    box.checked = storedKinds().includes(kind);
    box.addEventListener("change", () => saveKinds());
    return h("label", { className: "kind" }, box, label);
  });
  const enable = h("button", { type: "button", className: "primary", onclick: () => run(enableHere) }, "Notify this device");
  const disable = h("button", { type: "button", onclick: () => run(disableHere) }, "Stop notifying this device");
  const test = h("button", { type: "button", onclick: () => run(sendTest) }, "Send a test");
  const closeButton = h("button", { type: "button", className: "close", "aria-label": "Close", onclick: () => close() }, "\u00d7");
  const panel = h(
    "div",
    { className: "settings", role: "dialog", "aria-modal": "true", "aria-label": "Notifications" },
    h("header", {}, h("h2", {}, "Notifications"), closeButton),
    h("fieldset", {}, h("legend", {}, "Tell me when"), boxes),
    pushState,
    h("div", { className: "actions" }, enable, disable, test),
    status,
  );
  const backdrop = h("div", { className: "backdrop", onclick: (event) => event.target === backdrop && close() }, panel);
  const onKey = (event) => event.key === "Escape" && close();
  document.addEventListener("keydown", onKey);
  document.body.append(backdrop);

  function say(message, kind = "error") {
    status.textContent = message || "";
    status.dataset.kind = kind;
  }

  async function run(what) {
    say("");
    try {
      await what();
    } catch (error) {
      notice(error);
      say(error.message);
    }
    await refresh();
  }

  function picked() {
    return boxes.map((label) => label.querySelector("input")).filter((box) => box.checked).map((box) => box.value);
  }

  async function saveKinds() {
    const kinds = picked();
    storeKinds(kinds);
    // A device already subscribed hears of the new choice at once.
    if (await currentSubscription()) await run(() => enablePush(api, kinds));
  }

  async function enableHere() {
    await enablePush(api, picked());
    say("This device gets notifications, with the page closed too.", "ok");
  }

  async function disableHere() {
    await disablePush(api);
    say("This device gets no more notifications; the page still shows them while open.", "ok");
  }

  async function sendTest() {
    const answer = await api.post("/api/push/test", { message: "A test from the notifications panel" });
    say(answer.message, answer.success ? "ok" : "error");
  }

  async function refresh() {
    let server = null;
    try {
      server = await api.get("/api/push/status");
    } catch (error) {
      notice(error);
    }
    const subscribed = Boolean(await currentSubscription().catch(() => null));
    const permission = "Notification" in window ? Notification.permission : "unsupported";
    let text;
    if (!server || !server.enabled) text = "The daemon sends no push notifications; the page shows events while it is open.";
    else if (!pushSupported()) text = "This browser cannot get push notifications here (it needs HTTPS, or localhost).";
    else if (permission === "denied") text = "Notifications are blocked for this page in the browser's settings.";
    else if (subscribed) text = "This device gets push notifications, with the page closed too.";
    else text = "This device gets no push notifications yet; the page shows events while it is open.";
    pushState.textContent = text;
    pushState.dataset.subscribed = String(subscribed);
    enable.hidden = subscribed || !server?.enabled || !pushSupported() || permission === "denied";
    disable.hidden = !subscribed;
    test.hidden = !server?.enabled;
  }

  function close() {
    document.removeEventListener("keydown", onKey);
    backdrop.remove();
  }

  refresh();
  closeButton.focus();
  return close;
}
