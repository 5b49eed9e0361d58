// The browser client: the session list at /, one session at /#session=<id>.
import "@xterm/xterm/css/xterm.css";
import "./app.css";
import { Api } from "./api.js";
import { h } from "./dom.js";
import { followEvents, seen } from "./events.js";
import { showList } from "./list.js";
import { checkLogin, showLogin } from "./login.js";
import { parseRoute } from "./route.js";
import { registerWorker } from "./settings.js";
import { showSession } from "./terminal.js";

const root = document.getElementById("app");
let cleanup = null;
let generation = 0;

function unreachable(error) {
  root.replaceChildren(
    h("main", { className: "error-view" },
      h("h1", {}, "vibetwist"),
      h("p", { role: "alert" }, error.message),
      h("button", { type: "button", className: "primary", onclick: () => show() }, "Try again")),
  );
}

async function show() {
  const mine = ++generation;
  if (cleanup) cleanup();
  cleanup = null;
  const route = parseRoute(location.hash);
  const api = new Api(route.view === "session" ? route.share : null);
  // A 401 anywhere means the login token is gone or expired: log in again, or,
  // when the daemon has login off, go on without the token. Without a token to
  // drop there is nothing to retry, so the page says so instead of looping.
  const notice = (error) => {
    if (error.status !== 401 || api.shareToken || mine !== generation) return;
    if (cleanup) cleanup();
    cleanup = null;
    const hadToken = Boolean(api.token);
    api.setLoginToken(null);
    api.get("/api/auth/config").then((config) => {
      if (mine !== generation) return;
      if (!config.noAuth) showLogin(root, api, config, show);
      else if (hadToken) show();
      else unreachable(error);
    }, unreachable);
  };
  if (!route.share) {
    try {
      if (!(await checkLogin(root, api, show))) return;
    } catch (error) {
      if (mine === generation) unreachable(error);
      return;
    }
  }
  if (mine !== generation) return;
  followEvents(api);
  if (route.view === "session") seen(route.session);
  cleanup = route.view === "session" ? showSession(root, api, route, notice) : showList(root, api, notice);
}

window.addEventListener("hashchange", show);
registerWorker();
show();
