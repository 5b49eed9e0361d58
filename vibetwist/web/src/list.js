// The session list: every session, newest first, with a live preview of its
// screen, and the form that starts a new one. Served by a gateway, the sessions are
// grouped by the host they run on (a heading per host says how it is), may be
// filtered to one host, and the form picks the host to start on.
import { ApiError } from "./api.js";
import { h } from "./dom.js";
import { badgeKind, badgeOf, watchBadges } from "./events.js";
import { drawSnapshot } from "./preview.js";
import { Previews } from "./previews.js";
import { splitCommand } from "./command.js";
import { ALL_HOSTS, groupSessions, groupSummary, hostNames, isGateway, pickerChoices } from "./hosts.js";
import { sessionHash } from "./route.js";
import { showSettings } from "./settings.js";

const POLL_MS = 2000;
const HOST_FILTER_KEY = "vibetwist.hostFilter";

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
  let gateway = false;
  let hosts = [];

  const status = h("div", { className: "status-line", role: "status" });
  const list = h("ul", { className: "sessions", "aria-label": "Sessions" });
  const empty = h("p", { className: "empty" }, "No sessions yet: start one above.");
  const groupsBox = h("div", { className: "host-groups", hidden: true });
  const filter = h("select", { name: "hostFilter", "aria-label": "Show the sessions of",
    onchange: () => {
      localStorage.setItem(HOST_FILTER_KEY, filter.value);
      render(lastSessions);
    } });
  const filterBar = h("label", { className: "host-filter", hidden: true }, "Host", filter);
  const picker = h("select", { name: "host", "aria-label": "Host" });
  const pickerLabel = h("label", { hidden: true }, "Host", picker);

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
    pickerLabel,
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
    h("main", { className: "list-view" }, form, status, filterBar, list, groupsBox, empty),
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
    if (gateway && picker.value !== ALL_HOSTS) body.host = picker.value;
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
    const key = JSON.stringify([session.name, session.status, session.exitCode, session.workingDir, session.host,
      shareAvailable, badge]);
    if (entry.key === key) return;
    entry.key = key;
    const exited = session.status === "exited";
    entry.el.dataset.status = session.status;
    entry.open.textContent = session.name || commandLine(session.command);
    // replaceChildren would show a null as the text "null": what is not there is left out.
    entry.meta.replaceChildren(...[
      h("span", { className: `badge ${session.status}` },
        exited ? `exited${session.exitCode !== undefined ? ` (${session.exitCode})` : ""}` : session.status),
      h("code", { className: "command" }, commandLine(session.command)),
      h("span", { className: "cwd", title: session.workingDir }, session.workingDir),
      typeof session.host === "string" ? h("span", { className: "host-tag", title: "Host" }, session.host) : null,
      badge ? h("span", { className: "event-badge", dataset: { kind: badgeKind(session.id) } }, badge) : null,
    ].filter(Boolean));
    const id = encodeURIComponent(session.id);
    entry.actions.replaceChildren(...[
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
    ].filter(Boolean));
  }

  // Put exactly these elements into box, in this order, moving those already there.
  function place(box, elements) {
    elements.forEach((el, index) => {
      if (box.children[index] !== el) box.insertBefore(el, box.children[index] || null);
    });
    while (box.children.length > elements.length) box.lastChild.remove();
  }

  function entryFor(session) {
    let entry = cards.get(session.id);
    if (!entry) {
      entry = card(session);
      cards.set(session.id, entry);
    }
    fill(entry, session);
    return entry;
  }

  // One host's group: its heading (name, status, counts), a note when it shows no
  // session, and its cards.
  const groupEls = new Map(); // host -> {el, heading, summary, note, list}
  function groupEl(group) {
    let entry = groupEls.get(group.host);
    if (!entry) {
      const summary = h("span", { className: "host-summary" });
      const heading = h("h2", {}, h("span", { className: "host-name" }, group.host || "(no host)"), summary);
      const note = h("p", { className: "host-note" });
      const cardsList = h("ul", { className: "sessions", "aria-label": `Sessions on ${group.host}` });
      const el = h("section", { className: "host-group", dataset: { host: group.host } }, heading, note, cardsList);
      entry = { el, summary, note, list: cardsList };
      groupEls.set(group.host, entry);
    }
    entry.el.dataset.status = group.status;
    entry.summary.textContent = groupSummary(group);
    entry.note.textContent = group.note || "";
    entry.note.hidden = !group.note;
    return entry;
  }

  function renderFilter(sessions, groups) {
    const names = [ALL_HOSTS, ...hostNames(sessions, hosts)];
    const picked = localStorage.getItem(HOST_FILTER_KEY) || ALL_HOSTS;
    const key = JSON.stringify(names);
    if (filter.dataset.key !== key) {
      filter.dataset.key = key;
      filter.replaceChildren(...names.map((host) => h("option", { value: host }, host === ALL_HOSTS ? "all hosts" : host)));
    }
    filter.value = groups.length === 1 && picked === groups[0].host ? picked : ALL_HOSTS;
  }

  function renderPicker() {
    const choices = pickerChoices(hosts);
    const key = JSON.stringify(choices);
    if (picker.dataset.key === key) return;
    const before = picker.value;
    picker.dataset.key = key;
    picker.replaceChildren(...choices.map(([value, label]) => h("option", { value }, label)));
    picker.value = choices.some(([value]) => value === before) ? before : ALL_HOSTS;
  }

  let lastSessions = [];
  function render(sessions) {
    lastSessions = sessions;
    const seen = new Set();
    let shown = sessions;
    if (gateway) {
      const groups = groupSessions(sessions, hosts, localStorage.getItem(HOST_FILTER_KEY) || ALL_HOSTS);
      shown = groups.flatMap((group) => group.sessions);
      place(groupsBox, groups.map((group) => {
        const entry = groupEl(group);
        place(entry.list, group.sessions.map((session) => entryFor(session).el));
        return entry.el;
      }));
      for (const [host, entry] of groupEls) {
        if (!groups.some((group) => group.host === host)) {
          entry.el.remove();
          groupEls.delete(host);
        }
      }
      renderFilter(sessions, groups);
      renderPicker();
    } else {
      place(list, sessions.map((session) => entryFor(session).el));
    }
    for (const session of shown) seen.add(session.id);
    for (const [id, entry] of cards) {
      if (!seen.has(id)) {
        entry.el.remove();
        cards.delete(id);
      }
    }
    list.hidden = gateway;
    groupsBox.hidden = !gateway;
    filterBar.hidden = !gateway;
    pickerLabel.hidden = !gateway;
    form.classList.toggle("with-host", gateway);
    empty.hidden = shown.length > 0;
    previews.follow([...seen]);
  }

  // Served by a gateway or by a plain host: GET /api/config says, once.
  let config = null;
  async function learnConfig() {
    if (config) return;
    try {
      config = await api.get("/api/config");
    } catch (error) {
      if (error.status !== 404) throw error;
      config = {};
    }
    gateway = isGateway(config);
  }

  async function refresh() {
    await learnConfig();
    const [sessions, hostList] = await Promise.all([
      api.get("/api/sessions"),
      gateway ? api.get("/api/hosts").catch(() => hosts) : Promise.resolve([]),
    ]);
    if (stopped) return;
    hosts = Array.isArray(hostList) ? hostList : [];
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
