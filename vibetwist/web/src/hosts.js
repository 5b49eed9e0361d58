// The session list as a gateway serves it: each session carries the host it runs on,
// and GET /api/hosts says how each host is. Pure, so tests/test_web_logic.py runs it
// under Node.
//
// A plain daemon's answers have no "host" fields and its /api/config no "gateway":
// then none of this applies and the list shows as it always has.

// The filter that shows every host.
export const ALL_HOSTS = "";

// Whether the page is served by a gateway (GET /api/config's answer).
export function isGateway(config) {
  return Boolean(config && config.gateway === true);
}

function counts(view) {
  const sessions = (view && view.sessions) || {};
  const number = (value) => (Number.isInteger(value) && value >= 0 ? value : 0);
  return { running: number(sessions.running), exited: number(sessions.exited) };
}

function hostOf(session) {
  return typeof session.host === "string" ? session.host : "";
}

// Every host name that hosts (GET /api/hosts) or sessions know of, sorted.
export function hostNames(sessions, hosts) {
  const names = new Set();
  for (const view of hosts || []) if (view && typeof view.host === "string") names.add(view.host);
  for (const session of sessions || []) names.add(hostOf(session));
  return [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

// The filter in force: the one picked, unless no host of that name is known any more.
export function effectiveFilter(picked, names) {
  return typeof picked === "string" && names.includes(picked) ? picked : ALL_HOSTS;
}

// The list's groups, one per host in name order (only the filter's host when there is
// one): {host, status, running, exited, sessions, note}. status is the one /api/hosts
// gives ("up", "down", "stopped"), or "unknown" for a host it does not list; sessions
// keep the order they were listed in; note says why a group shows no session.
export function groupSessions(sessions, hosts, picked = ALL_HOSTS) {
  const views = new Map();
  for (const view of hosts || []) if (view && typeof view.host === "string") views.set(view.host, view);
  const names = hostNames(sessions, hosts);
  const filter = effectiveFilter(picked, names);
  const groups = [];
  for (const name of names) {
    if (filter !== ALL_HOSTS && name !== filter) continue;
    const view = views.get(name);
    const status = view && typeof view.status === "string" ? view.status : "unknown";
    const mine = (sessions || []).filter((session) => hostOf(session) === name);
    let note = null;
    if (status === "down") note = "This host is not answering: its sessions are not listed.";
    else if (status === "stopped") note = "This host has stopped.";
    else if (!mine.length) note = "No sessions on this host.";
    groups.push({ host: name, status, ...counts(view), sessions: mine, note });
  }
  return groups;
}

// The words under a group's heading: "up · 2 running, 1 exited".
export function groupSummary(group) {
  return `${group.status} · ${group.running} running, ${group.exited} exited`;
}

// The create form's host picker: [value, label] pairs, "any" (the least busy up host,
// chosen by the gateway) first, then every up host by name.
export function pickerChoices(hosts) {
  const up = (hosts || [])
    .filter((view) => view && typeof view.host === "string" && view.status === "up")
    .map((view) => view.host)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return [[ALL_HOSTS, "any (least busy)"], ...up.map((name) => [name, name])];
}
