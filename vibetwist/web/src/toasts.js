// Toasts: short notices in a corner of the page, each for a few seconds (longer for
// what needs the user), four at most.
import { h } from "./dom.js";

const SHOWN_MS = 8000;
const LONGER_MS = 20000;
const MOST = 4;
const LONGER = new Set(["needs-input", "command-error", "claude-turn"]);

let box = null;

function container() {
  if (!box || !box.isConnected) {
    box = h("div", { className: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(box);
  }
  return box;
}

export function showToast({ kind, title, body, url }) {
  const place = container();
  const close = () => toast.remove();
  const toast = h(
    "div",
    { className: "toast", dataset: { kind } },
    h("a", { className: "toast-text", href: url || "/", onclick: close },
      h("strong", {}, title), body ? h("span", {}, body) : null),
    h("button", { type: "button", className: "toast-close", "aria-label": "Dismiss", onclick: close }, "\u00d7"),
  );
  place.append(toast);
  while (place.children.length > MOST) place.firstElementChild.remove();
  setTimeout(close, LONGER.has(kind) ? LONGER_MS : SHOWN_MS);
  return toast;
}
