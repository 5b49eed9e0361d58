// Splitting a command line typed in the form into argv, as a POSIX shell
// would (and as Python's shlex.split does: tests/test_web_logic.py checks it).
// The daemon runs argv[0] as a program, or the whole through the user's shell.

const SPACE = " \t\r\n";

export class CommandError extends Error {}

export function splitCommand(text) {
  const argv = [];
  let current = null; // the word being read, null between words
  let quote = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote === "'") {
      if (c === "'") quote = null;
      else current += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === "\\" && i + 1 < text.length && (text[i + 1] === '"' || text[i + 1] === "\\")) current += text[++i];
      else current += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      current = current ?? "";
    } else if (c === "\\") {
      if (i + 1 >= text.length) throw new CommandError("The command ends with a lone backslash.");
      current = (current ?? "") + text[++i];
    } else if (SPACE.includes(c)) {
      if (current !== null) argv.push(current);
      current = null;
    } else {
      current = (current ?? "") + c;
    }
  }
  if (quote) throw new CommandError(`The command has an unclosed ${quote} quote.`);
  if (current !== null) argv.push(current);
  return argv;
}
