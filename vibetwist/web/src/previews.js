// The /buffers WebSocket: live snapshots of the listed sessions' screens. A socket
// that fails or closes is opened again by itself (at once, then backing off), and
// subscribes again to every session followed, whose next snapshots redraw the previews.
import { backoff } from "./backoff.js";
import { decodeBuffersFrame, decodeSnapshot } from "./snapshot.js";

export class Previews {
  constructor(api, onSnapshot) {
    this.api = api;
    this.onSnapshot = onSnapshot; // (sessionId, snapshot)
    this.wanted = new Set();
    this.socket = null;
    this.closed = false;
    this.retry = null;
    this.attempt = 0; // failed connections since the last frame received
    this.connect();
  }

  connect() {
    const socket = new WebSocket(this.api.socketUrl("/buffers"));
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      for (const id of this.wanted) this.send({ type: "subscribe", sessionId: id });
    };
    socket.onmessage = (event) => {
      this.attempt = 0;
      if (typeof event.data === "string") return; // subscribed, pong, error: nothing to show
      try {
        const frame = decodeBuffersFrame(event.data);
        this.onSnapshot(frame.sessionId, decodeSnapshot(frame.snapshot));
      } catch (error) {
        console.warn("unreadable /buffers frame", error);
      }
    };
    socket.onclose = (event) => {
      if (this.socket === socket) this.socket = null;
      if (this.closed) return;
      // 1012: the daemon restarts in place and answers again as soon as it has started.
      this.attempt += 1;
      const delay = event.code === 1012 ? 200 : backoff(this.attempt);
      this.retry = setTimeout(() => this.connect(), delay);
    };
    this.socket = socket;
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  // Follow exactly these sessions.
  follow(ids) {
    const next = new Set(ids);
    for (const id of this.wanted) if (!next.has(id)) this.send({ type: "unsubscribe", sessionId: id });
    for (const id of next) if (!this.wanted.has(id)) this.send({ type: "subscribe", sessionId: id });
    this.wanted = next;
  }

  close() {
    this.closed = true;
    clearTimeout(this.retry);
    if (this.socket) this.socket.close();
  }
}
