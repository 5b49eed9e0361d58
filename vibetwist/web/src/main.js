// The browser client: the session list at /, one session at /#session=<id>.
import "@xterm/xterm/css/xterm.css";
import "./app.css";
import { Api } from "./api.js";
import { h } from "./dom.js";
import { showList } from "./list.js";
import { checkLogin, showLogin } from "./login.js";
import { parseRoute } from "./route.js";
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
  // A 401 anywhere means the login token is gone or expired: log in again.
  const notice = (error) => {
    if (error.status === 401 && !api.shareToken && mine === generation) {
      if (cleanup) cleanup();
      cleanup = null;
      api.setLoginToken(null);
      api.get("/api/auth/config").then((config) => showLogin(root, api, config, show), unreachable);
    }
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
  cleanup = route.view === "session" ? showSession(root, api, route, notice) : showList(root, api, notice);
}

window.addEventListener("hashchange", show);
show();
