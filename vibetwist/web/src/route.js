// What the page's URL fragment asks for. Pure, so it is tested against Python's
// URL encoding (tests/test_web_logic.py).
//
//   ""  or "#"                       the session list
//   "#session=ID"                    one session, full-window
//   "#session=ID&readonly=1"         the same, watching only
//   "#session=ID&share=TOKEN"        a read-only share link: watching only, with TOKEN

const TRUE = new Set(["1", "true", "yes"]);

export function parseRoute(hash) {
  const params = new URLSearchParams(String(hash || "").replace(/^#/, ""));
  const session = params.get("session");
  if (!session) return { view: "list" };
  const share = params.get("share") || null;
  return {
    view: "session",
    session,
    share,
    readOnly: share !== null || TRUE.has(params.get("readonly") || ""),
  };
}

export function sessionHash({ session, share = null, readOnly = false }) {
  const params = new URLSearchParams({ session });
  if (share) params.set("share", share);
  else if (readOnly) params.set("readonly", "1");
  return "#" + params.toString();
}
