// One session full-window in xterm.js, over /ws/sessions/<id>: the replay
// restores the screen on every (re)connection, typing and resizes go back.
import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import { backoff, isUnreachable, unreachableBackoff } from "./backoff.js";
import { h } from "./dom.js";
import { fittingFont, SMALLEST_FONT } from "./fontfit.js";
import { KeyBar } from "./keybar.js";

const CLOSE_NOT_FOUND = 4404;
// The daemon restarts in place: the session goes on, and the new daemon answers as soon as it
// has started (connections wait for it), so the page comes back without backing off.
const CLOSE_RESTARTING = 1012;
const RESTART_DELAY = 200;

export function showSession(root, api, route, notice) {
  const id = route.session;
  const readOnly = route.readOnly;
  const encoder = new TextEncoder();
  let socket = null;
  let attempt = 0;
  let retry = null;
  let ended = false; // the program ended, or the session is gone: no reconnecting
  let disposed = false;
  let exited = false;
  // What a gateway last said of the session's host when it could not reach it: until a
  // replay arrives the page says so and asks again more slowly.
  let unreachable = null;

  const title = h("span", { className: "title" }, id);
  const state = h("span", { className: "state", dataset: { state: "connecting" } }, "connecting");
  const banner = h("div", { className: "banner", role: "alert", hidden: true });
  const screen = h("div", { className: "term-box", "aria-label": "Terminal" });
  root.replaceChildren(
    h(
      "div",
      { className: "session-view" + (readOnly ? " read-only" : "") },
      h(
        "header",
        { className: "bar" },
        route.share ? null : h("a", { className: "back", href: "#", title: "All sessions" }, "←"),
        title,
        readOnly ? h("span", { className: "badge readonly", title: "You can watch, not type" }, "read-only") : null,
        state,
      ),
      banner,
      screen,
    ),
  );

  const fontSize = window.matchMedia("(max-width: 600px)").matches ? 12 : 14;
  const term = new Terminal({
    cursorBlink: true,
    scrollback: 10000,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
    fontSize,
    disableStdin: readOnly,
    theme: { background: "#1e1e1e" },
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(screen);
  if (term.textarea) {
    // Mobile keyboards: no capitalising, correcting or suggesting in a terminal.
    for (const [name, value] of [["autocapitalize", "off"], ["autocorrect", "off"], ["spellcheck", "false"],
      ["autocomplete", "off"], ["enterkeyhint", "send"]]) {
      term.textarea.setAttribute(name, value);
    }
  }

  function setState(name, text = name) {
    state.dataset.state = name;
    state.textContent = text;
  }

  function say(message, kind = "info") {
    banner.hidden = !message;
    banner.textContent = message || "";
    banner.dataset.kind = kind;
  }

  function send(data) {
    if (readOnly) return;
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(encoder.encode(data));
    else if (!ended) say("Not connected: what you type now is not sent.", "warning");
  }

  let keybar = null;
  if (!readOnly) {
    keybar = new KeyBar(send, () => term.modes.applicationCursorKeysMode, () => term.focus());
    root.firstChild.append(keybar.el);
    term.onData((data) => keybar.type(data));
    // A phone keyboard's Enter can come as a line break typed as text (after a
    // keydown with key code 229), which xterm.js would send as LF: send CR, as
    // the Enter key does. Caught on the way down, before xterm.js sees it.
    screen.addEventListener("input", (event) => {
      const lineBreak = event.inputType === "insertLineBreak" || event.inputType === "insertParagraph" ||
        (event.inputType === "insertText" && event.data === "\n");
      if (!lineBreak || event.target !== term.textarea) return;
      event.stopPropagation();
      term.textarea.value = "";
      keybar.type("\r");
    }, { capture: true });
    term.onBinary((data) => {
      if (socket && socket.readyState === WebSocket.OPEN) {
        socket.send(Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff));
      }
    });
  }

  // Ask the daemon for the size that fits the window; xterm follows when the
  // daemon says the terminal changed size, so the output always fits it.
  function sendSize() {
    if (readOnly || exited || !socket || socket.readyState !== WebSocket.OPEN) return;
    const size = fit.proposeDimensions();
    if (!size || !(size.cols > 0) || !(size.rows > 0)) return;
    socket.send(JSON.stringify({ type: "resize", cols: size.cols, rows: size.rows }));
  }

  // A read-only view keeps the session's size (it never resizes the PTY): on a
  // narrow window its font shrinks until the whole width shows.
  function scaleToWidth() {
    if (!readOnly) return;
    const box = term.element && term.element.querySelector(".xterm-screen");
    if (!box) return;
    const room = screen.clientWidth - 4;
    let font = fontSize;
    term.options.fontSize = font;
    for (let step = 0; step < 8 && box.offsetWidth > room && font > SMALLEST_FONT; step += 1) {
      font = Math.min(font - 0.5, fittingFont(font, box.offsetWidth, room));
      term.options.fontSize = font;
    }
  }

  let resizeTimer = null;
  const onWindowResize = () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      sendSize();
      scaleToWidth();
    }, 100);
  };
  window.addEventListener("resize", onWindowResize);

  // The phone's on-screen keyboard shrinks the visual viewport, not the window:
  // the view follows the visible area, so the key bar stays above the keyboard and
  // the terminal refits (and the PTY gets the new size). Pinch-zoom is left alone.
  const viewport = window.visualViewport;
  const view = root.firstChild;
  const onViewport = () => {
    if (!viewport || Math.abs(viewport.scale - 1) > 0.01) return;
    const covered = Math.round(window.innerHeight - viewport.height) > 0;
    view.style.height = covered ? `${viewport.height}px` : "";
    view.style.top = covered ? `${viewport.offsetTop}px` : "";
    view.style.bottom = covered ? "auto" : "";
    onWindowResize();
  };
  if (viewport) {
    viewport.addEventListener("resize", onViewport);
    viewport.addEventListener("scroll", onViewport);
  }
  const resizeObserver = new ResizeObserver(onWindowResize);
  resizeObserver.observe(screen);

  function onMessage(message) {
    switch (message.type) {
      case "replay":
        // The screen is drawn again from scratch: whatever xterm shows goes.
        attempt = 0;
        unreachable = null;
        term.reset();
        term.resize(message.cols, message.rows);
        exited = message.status === "exited";
        setState(exited ? "exited" : "live", exited ? "exited" : "live");
        if (!ended) say("");
        sendSize();
        scaleToWidth();
        break;
      case "resize":
        term.resize(message.cols, message.rows);
        scaleToWidth();
        break;
      case "exit":
        ended = exited = true;
        setState("exited");
        say(`The session has ended (exit code ${message.code}).`, "ended");
        break;
      case "skipped":
        say(`Fell behind: skipped ${message.bytes} bytes of output.`, "warning");
        break;
      case "error":
        if (isUnreachable(message.message)) {
          unreachable = message.message;
          setState("reconnecting", "unreachable");
          say(`The session's ${message.message}.`, "unreachable");
        } else {
          say(message.message, "warning");
        }
        break;
      default:
        break;
    }
  }

  function connect() {
    if (disposed) return;
    setState("connecting");
    const params = readOnly ? { readonly: "1" } : {};
    const ws = new WebSocket(api.socketUrl(`/ws/sessions/${encodeURIComponent(id)}`, params));
    ws.binaryType = "arraybuffer";
    socket = ws;
    ws.onmessage = (event) => {
      if (typeof event.data === "string") {
        try {
          onMessage(JSON.parse(event.data));
        } catch (error) {
          console.warn("unreadable message", error);
        }
      } else {
        term.write(new Uint8Array(event.data));
      }
    };
    ws.onclose = (event) => {
      if (socket !== ws) return;
      socket = null;
      if (disposed || ended) return;
      if (event.code === CLOSE_NOT_FOUND) {
        gone();
        return;
      }
      if (event.code === CLOSE_RESTARTING) {
        restarting();
        return;
      }
      reconnect();
    };
  }

  function restarting() {
    attempt = 0;
    setState("reconnecting", "restarting");
    say("The daemon is restarting; the session goes on. Reconnecting…", "reconnecting");
    clearTimeout(retry);
    retry = setTimeout(probe, RESTART_DELAY);
  }

  function gone() {
    ended = true;
    setState("gone", "not found");
    say("This session does not exist (any more).", "ended");
  }

  // Connect again after a failed connection or an abnormal close: at once, then after
  // a growing pause (attempt counts up until a replay arrives).
  function reconnect() {
    attempt += 1;
    clearTimeout(retry);
    if (unreachable) {
      hostUnreachable();
      return;
    }
    const delay = backoff(attempt);
    setState("reconnecting");
    say(delay ? `Connection lost. Reconnecting in ${Math.ceil(delay / 1000)} s (attempt ${attempt})…`
      : "Connection lost. Reconnecting…", "reconnecting");
    retry = setTimeout(probe, delay);
  }

  function hostUnreachable() {
    const delay = unreachableBackoff(attempt);
    setState("reconnecting", "unreachable");
    say(`The session's ${unreachable}. Trying again in ${Math.ceil(delay / 1000)} s (attempt ${attempt})…`,
      "unreachable");
    retry = setTimeout(probe, delay);
  }

  // Before reconnecting, learn whether the daemon is there and the session still is.
  async function probe() {
    if (disposed) return;
    try {
      const info = await api.get(`/api/sessions/${encodeURIComponent(id)}`);
      title.textContent = info.name || id;
    } catch (error) {
      if (error.status === 404) {
        gone();
        return;
      }
      if (error.status === 401) {
        notice(error);
        return;
      }
      if (error.status === 503 && isUnreachable(error.message)) {
        unreachable = error.message;
        attempt += 1;
        hostUnreachable();
        return;
      }
      if (error.status === 0) {
        attempt += 1;
        const delay = backoff(attempt);
        setState("reconnecting", "offline");
        say(`The daemon is unreachable. Trying again in ${Math.ceil(delay / 1000)} s (attempt ${attempt})…`,
          "reconnecting");
        retry = setTimeout(probe, delay);
        return;
      }
    }
    connect();
  }

  const onOnline = () => {
    if (!socket && !ended && !disposed) {
      clearTimeout(retry);
      probe();
    }
  };
  window.addEventListener("online", onOnline);

  api.get(`/api/sessions/${encodeURIComponent(id)}`).then(
    (info) => {
      title.textContent = info.name || id;
      document.title = `${info.name || id} · vibetwist`;
      // Served by a gateway: which host the session runs on.
      if (typeof info.host === "string") title.after(h("span", { className: "host-tag", title: "Host" }, info.host));
    },
    (error) => {
      if (error.status === 404) gone();
      else if (error.status === 0) say(error.message, "reconnecting");
      else notice(error);
    },
  );
  connect();
  term.focus();

  return () => {
    disposed = true;
    clearTimeout(retry);
    clearTimeout(resizeTimer);
    window.removeEventListener("resize", onWindowResize);
    if (viewport) {
      viewport.removeEventListener("resize", onViewport);
      viewport.removeEventListener("scroll", onViewport);
    }
    window.removeEventListener("online", onOnline);
    resizeObserver.disconnect();
    if (socket) socket.close();
    term.dispose();
  };
}
