// The key bar: keys a phone's keyboard lacks. Ctrl is a sticky modifier: it
// applies to the next key typed, on the bar or on the keyboard.
import { h } from "./dom.js";

// The bytes of Ctrl+key for one typed character, or null when there are none.
export function ctrlOf(data) {
  if (data.length !== 1) return null;
  const code = data.toUpperCase().charCodeAt(0);
  if (code >= 0x40 && code <= 0x5f) return String.fromCharCode(code - 0x40);
  if (data === " " || data === "2") return "\x00";
  if (data === "?") return "\x7f";
  return null;
}

const ARROWS = [["↑", "A", "Up"], ["↓", "B", "Down"], ["←", "D", "Left"], ["→", "C", "Right"]];

export class KeyBar {
  // send(data): type data; applicationCursor(): whether the program asked for
  // application cursor keys (ESC O A instead of ESC [ A).
  constructor(send, applicationCursor, refocus) {
    this.send = send;
    this.ctrl = false;
    const key = (label, data, title) =>
      h("button", {
        type: "button",
        tabindex: "-1",
        title,
        "aria-label": title,
        dataset: { key: label },
        // Keep the focus (and the phone's keyboard) on the terminal.
        onpointerdown: (event) => event.preventDefault(),
        onmousedown: (event) => event.preventDefault(),
        onclick: () => {
          this.type(typeof data === "function" ? data() : data);
          refocus();
        },
      }, label);
    this.ctrlButton = h("button", {
      type: "button", tabindex: "-1", className: "modifier", "aria-pressed": "false", title: "Ctrl (next key)",
      dataset: { key: "Ctrl" },
      onpointerdown: (event) => event.preventDefault(),
      onmousedown: (event) => event.preventDefault(),
      onclick: () => {
        this.setCtrl(!this.ctrl);
        refocus();
      },
    }, "Ctrl");
    this.el = h(
      "div",
      { className: "keybar", role: "toolbar", "aria-label": "Keys" },
      key("Esc", "\x1b", "Escape"),
      key("Tab", "\t", "Tab"),
      this.ctrlButton,
      ARROWS.map(([label, final, title]) =>
        key(label, () => (applicationCursor() ? "\x1bO" : "\x1b[") + final, title)),
      key("|", "|", "Pipe"),
      key("~", "~", "Tilde"),
      key("/", "/", "Slash"),
      key("-", "-", "Dash"),
    );
  }

  setCtrl(on) {
    this.ctrl = on;
    this.ctrlButton.setAttribute("aria-pressed", String(on));
  }

  // Typed data, from the bar or the keyboard: Ctrl applies when it is armed.
  type(data) {
    if (this.ctrl) {
      this.setCtrl(false);
      const control = ctrlOf(data);
      if (control !== null) data = control;
    }
    this.send(data);
  }
}
