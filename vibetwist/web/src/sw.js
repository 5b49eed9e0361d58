// The service worker: shows the daemon's push notifications (the page may be closed),
// opens the session a notification is about when it is clicked, and answers a page
// load that cannot reach the daemon with a short page saying so. Served as
// /static/sw.js with scope "/" (the daemon sends Service-Worker-Allowed: /).

const ICON = "/static/icon-192.png";
const OFFLINE =
  "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>" +
  "<title>vibetwist</title><body style='background:#121212;color:#e6e6e6;font:16px system-ui;padding:2em'>" +
  "<h1>vibetwist</h1><p>The daemon cannot be reached. Is it still running, and is this device online?</p>";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

function noteOf(data) {
  if (!data) return { title: "vibetwist", body: "" };
  try {
    return data.json();
  } catch {
    return { title: "vibetwist", body: data.text() };
  }
}

self.addEventListener("push", (event) => {
  const note = noteOf(event.data);
  const options = {
    body: note.body || "",
    icon: ICON,
    data: { url: note.url || "/", event: note.event || null },
  };
  if (note.tag) {
    options.tag = note.tag;
    options.renotify = true;
  }
  event.waitUntil(self.registration.showNotification(note.title || "vibetwist", options));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = new URL(event.notification.data?.url || "/", self.location.origin).href;
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      for (const client of windows) {
        if (new URL(client.url).origin !== self.location.origin) continue;
        await client.focus();
        try {
          await client.navigate(url);
          return;
        } catch {
          break; // not ours to navigate: open a window instead
        }
      }
      await self.clients.openWindow(url);
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  if (event.request.mode !== "navigate") return; // everything else goes to the network as usual
  event.respondWith(
    fetch(event.request).catch(
      () => new Response(OFFLINE, { status: 503, headers: { "Content-Type": "text/html; charset=utf-8" } }),
    ),
  );
});
