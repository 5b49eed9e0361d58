// The login form, shown when /api/auth/config says login is on and there is
// no valid token yet.
import { ApiError } from "./api.js";
import { h } from "./dom.js";

// Whether the page may go on: true when login is off or the stored token is
// still good; otherwise the form is shown and onLogin() runs after a login.
export async function checkLogin(root, api, onLogin) {
  const config = await api.get("/api/auth/config");
  if (config.noAuth) {
    // A token kept from a daemon that had login on is of no use here: drop it.
    api.setLoginToken(null);
    return true;
  }
  if (api.token) {
    try {
      await api.get("/api/auth/verify");
      return true;
    } catch (error) {
      if (error.status !== 401) throw error;
      api.setLoginToken(null);
    }
  }
  showLogin(root, api, config, onLogin);
  return false;
}

export function showLogin(root, api, config, onLogin) {
  const message = h("p", { className: "status-line", role: "alert" });
  const user = h("input", { name: "userId", autocomplete: "username", required: true, autocapitalize: "off",
    "aria-label": "User" });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password",
    required: true, "aria-label": "Password" });
  const passwordAllowed = !config.disallowUserPassword;
  const form = h(
    "form",
    {
      className: "login",
      onsubmit: async (event) => {
        event.preventDefault();
        message.textContent = "";
        try {
          const answer = await api.post("/api/auth/password", { userId: user.value, password: password.value });
          if (!answer || !answer.token) throw new ApiError("The daemon did not give a token.");
          api.setLoginToken(answer.token);
          onLogin();
        } catch (error) {
          message.textContent = error.status === 401 ? "Wrong user or password." : error.message;
        }
      },
    },
    h("h1", {}, "vibetwist"),
    passwordAllowed
      ? [h("label", {}, "User", user), h("label", {}, "Password", password),
        h("button", { type: "submit", className: "primary" }, "Log in")]
      : h("p", {}, "This daemon accepts SSH-key login only, which the browser client cannot do."),
    message,
  );
  root.replaceChildren(h("main", { className: "login-view" }, form));
  if (passwordAllowed) user.focus();
}
