// The session list: every session, newest first, with a live preview of its
// screen, and the form that starts a new one.
import { ApiError } from "./api.js";
import { h } from "./dom.js";
import { badgeKind, badgeOf, watchBadges } from "./events.js";
import { drawSnapshot } from "./preview.js";
import { Previews } from "./previews.js";
import { splitCommand } from "./command.js";
import { sessionHash } from "./route.js";
import { showSettings } from "./settings.js";

const POLL_MS = 2000;

function commandLine(command) {
  return (command || []).map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : JSON.stringify(arg))).join(" ");
}

async function download(api, session) {
  const response = await fetch(`/api/sessions/${encodeURIComponent(session.id)}/recording`, {
    headers: api.token ? { Authorization: `Bearer ${api.token}` } : {},
  });
  if (!response.ok) throw new ApiError(`The recording could not be downloaded (${response.status})`);
  const url = URL.createObjectURL(await response.blob());
  const link = h("a", { href: url, download: `${session.name || session.id}.cast` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export function showList(root, api, notice) {
  const cards = new Map(); // id -> {card, preview, key}
  const previews = new Previews(api, (id, snapshot) => {
    const entry = cards.get(id);
    if (entry) drawSnapshot(entry.preview, snapshot);
  });
  let shareAvailable = true;
  let timer = null;
  let stopped = false;

  const status = h("div", { className: "status-line", role: "status" });
  const list = h("ul", { className: "sessions", "aria-label": "Sessions" });
  const empty = h("p", { className: "empty" }, "No sessions yet: start one above.");

  const command = h("input", { name: "command", value: "bash", required: true, "aria-label": "Command",
    autocapitalize: "off", autocomplete: "off", spellcheck: "false" });
  const workingDir = h("input", { name: "workingDir", placeholder: "~", "aria-label": "Working directory",
    autocapitalize: "off", autocomplete: "off", spellcheck: "false" });
  const name = h("input", { name: "name", placeholder: "name (optional)", "aria-label": "Name" });
  const form = h(
    "form",
    { className: "create", onsubmit: (event) => create(event) },
    h("label", {}, "Command", command),
    h("label", {}, "Directory", workingDir),
    h("label", {}, "Name", name),
    h("button", { type: "submit", className: "primary" }, "Start"),
  );

  root.replaceChildren(
    h(
      "header",
      { className: "bar" },
      h("h1", {}, "vibetwist"),
      h("button", { type: "button", className: "notifications", onclick: () => showSettings(api, notice),
        title: "Which events to hear of, here and with the page closed" }, "Notifications"),
      h("button", { type: "button", onclick: () => cleanup(), title: "Remove every exited session" }, "Clean up exited"),
    ),
    h("main", { className: "list-view" }, form, status, list, empty),
  );

  function say(message, kind = "error") {
    status.textContent = message || "";
    status.dataset.kind = kind;
  }

  async function act(what) {
    try {
      await what();
      await refresh();
    } catch (error) {
      notice(error);
      say(error.message);
    }
  }

  async function create(event) {
    event.preventDefault();
    let argv;
    try {
      argv = splitCommand(command.value);
    } catch (error) {
      say(error.message);
      return;
    }
    if (!argv.length) {
      say("Type a command to run, for example bash.");
      return;
    }
    const body = { command: argv };
    if (workingDir.value.trim()) body.workingDir = workingDir.value.trim();
    if (name.value.trim()) body.name = name.value.trim();
    try {
      const { sessionId } = await api.post("/api/sessions", body);
      location.hash = sessionHash({ session: sessionId });
    } catch (error) {
      notice(error);
      say(error.message);
    }
  }

  function cleanup() {
    act(() => api.post("/api/cleanup-exited"));
  }

  async function share(session, output) {
    try {
      const answer = await api.post(`/api/sessions/${encodeURIComponent(session.id)}/share`);
      const url = new URL(answer.url, location.href).toString();
      output.replaceChildren(
        h("input", { readonly: true, value: url, "aria-label": "Read-only link", onfocus: (e) => e.target.select() }),
      );
      output.hidden = false;
      navigator.clipboard?.writeText(url).catch(() => {});
    } catch (error) {
      if (error.status === 404 || error.status === 405) {
        shareAvailable = false;
        say("This daemon cannot make read-only links.");
        render(lastSessions);
      } else {
        say(error.message);
      }
    }
  }

  function card(session) {
    const preview = h("pre", { className: "preview", "aria-hidden": "true" });
    const shareOutput = h("div", { className: "share-link", hidden: true });
    const open = h("a", { className: "title", href: sessionHash({ session: session.id }) });
    const meta = h("div", { className: "meta" });
    const actions = h("div", { className: "actions" });
    const el = h("li", { className: "session", dataset: { id: session.id } }, open, meta,
      h("a", { className: "preview-link", href: sessionHash({ session: session.id }), tabindex: "-1" }, preview),
      actions, shareOutput);
    return { el, preview, open, meta, actions, shareOutput, key: "" };
  }

  function fill(entry, session) {
    const badge = badgeOf(session.id);
    const key = JSON.stringify([session.name, session.status, session.exitCode, session.workingDir, shareAvailable, badge]);
    if (entry.key === key) return;
    entry.key = key;
    const exited = session.status === "exited";
    entry.el.dataset.status = session.status;
    entry.open.textContent = session.name || commandLine(session.command);
    entry.meta.replaceChildren(
      h("span", { className: `badge ${session.status}` },
        exited ? `exited${session.exitCode !== undefined ? ` (${session.exitCode})` : ""}` : session.status),
      h("code", { className: "command" }, commandLine(session.command)),
      h("span", { className: "cwd", title: session.workingDir }, session.workingDir),
      badge ? h("span", { className: "event-badge", dataset: { kind: badgeKind(session.id) } }, badge) : null,
    );
    const id = encodeURIComponent(session.id);
    entry.actions.replaceChildren(
      h("button", { type: "button", onclick: () => {
        const next = prompt("New name", session.name);
        if (next !== null) act(() => api.request("PATCH", `/api/sessions/${id}`, { name: next }));
      } }, "Rename"),
      exited
        ? h("button", { type: "button", onclick: () => act(() => api.request("DELETE", `/api/sessions/${id}`)) }, "Remove")
        : h("button", { type: "button", className: "danger",
            onclick: () => act(() => api.request("DELETE", `/api/sessions/${id}`)) }, "Kill"),
      h("button", { type: "button", onclick: () => act(() => download(api, session)) }, "Recording"),
      shareAvailable ? h("button", { type: "button", onclick: () => share(session, entry.shareOutput) }, "Share") : null,
    );
  }

  let lastSessions = [];
  function render(sessions) {
    lastSessions = sessions;
    const seen = new Set();
    const order = [];
    for (const session of sessions) {
      seen.add(session.id);
      let entry = cards.get(session.id);
      if (!entry) {
        entry = card(session);
        cards.set(session.id, entry);
      }
      fill(entry, session);
      order.push(entry.el);
    }
    for (const [id, entry] of cards) {
      if (!seen.has(id)) {
        entry.el.remove();
        cards.delete(id);
      }
    }
    order.forEach((el, index) => {
      if (list.children[index] !== el) list.insertBefore(el, list.children[index] || null);
    });
    empty.hidden = sessions.length > 0;
    previews.follow([...seen]);
  }

  async function refresh() {
    const sessions = await api.get("/api/sessions");
    if (stopped) return;
    render(sessions);
    if (status.dataset.kind === "offline") say("");
  }

  async function poll() {
    try {
      await refresh();
    } catch (error) {
      if (stopped) return;
      notice(error);
      say(error.status === 0 ? error.message : `The session list could not be read: ${error.message}`, "offline");
    }
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  }

  const unwatch = watchBadges(() => render(lastSessions));
  poll();
  return () => {
    stopped = true;
    unwatch();
    clearTimeout(timer);
    previews.close();
  };
}
