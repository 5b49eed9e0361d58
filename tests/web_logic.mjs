// Runs the browser client's pure modules for tests/test_web_logic.py: one JSON
// call per line on stdin ({"fn", "arg"}), one JSON answer per line on stdout
// ({"value"} or {"error": class name, "message"}).
import { createInterface } from "node:readline";
import { backoff, isUnreachable, unreachableBackoff } from "../vibetwist/web/src/backoff.js";
import { splitCommand } from "../vibetwist/web/src/command.js";
import { fittingFont, SMALLEST_FONT } from "../vibetwist/web/src/fontfit.js";
import {
  effectiveFilter, groupSessions, groupSummary, hostNames, isGateway, pickerChoices,
} from "../vibetwist/web/src/hosts.js";
import { DEFAULT_KINDS, KINDS, describe, keyBytes, pickedKinds } from "../vibetwist/web/src/notice.js";
import { parseRoute, sessionHash } from "../vibetwist/web/src/route.js";
import { decodeBuffersFrame, decodeSnapshot } from "../vibetwist/web/src/snapshot.js";

const bytes = (b64) => Buffer.from(b64, "base64");

const calls = {
  snapshot: (b64) => decodeSnapshot(bytes(b64)),
  frame: (b64) => {
    const frame = decodeBuffersFrame(bytes(b64));
    return { sessionId: frame.sessionId, snapshot: Buffer.from(frame.snapshot).toString("base64") };
  },
  route: (hash) => parseRoute(hash),
  hash: (route) => sessionHash(route),
  split: (text) => splitCommand(text),
  font: ({ font, width, room }) => fittingFont(font, width, room),
  smallestFont: () => SMALLEST_FONT,
  describe: (event) => describe(event),
  kinds: () => ({ kinds: KINDS.map(([kind]) => kind), defaults: DEFAULT_KINDS }),
  picked: (stored) => pickedKinds(stored),
  keyBytes: (text) => Buffer.from(keyBytes(text)).toString("base64"),
  isGateway: (config) => isGateway(config),
  hostNames: ({ sessions, hosts }) => hostNames(sessions, hosts),
  filter: ({ picked, names }) => effectiveFilter(picked, names),
  groups: ({ sessions, hosts, picked }) => groupSessions(sessions, hosts, picked),
  summary: (group) => groupSummary(group),
  picker: (hosts) => pickerChoices(hosts),
  backoff: (attempts) => attempts.map((n) => backoff(n)),
  unreachableBackoff: (attempts) => attempts.map((n) => unreachableBackoff(n)),
  isUnreachable: (message) => isUnreachable(message),
};

for await (const line of createInterface({ input: process.stdin })) {
  const { fn, arg } = JSON.parse(line);
  let answer;
  try {
    answer = { value: calls[fn](arg) };
  } catch (error) {
    answer = { error: error.constructor.name, message: String(error.message) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
