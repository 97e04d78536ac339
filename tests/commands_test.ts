import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { type Command, COMMANDS, helpLines, parseCommand } from "../protocol/commands.ts";
import { DEFAULT_PORT, parseAddress, parsePort } from "../cli/_address.ts";
import { CliError, EXIT_USAGE } from "../cli/_errors.ts";

Deno.test("parseCommand turns typed lines into commands", async (t) => {
  const cases: Array<[string, Command]> = [
    ["/msg bob hi there", { kind: "msg", to: "bob", text: "hi there" }],
    ["/msg bob   你好 世界", { kind: "msg", to: "bob", text: "你好 世界" }],
    ["/m bob hi", { kind: "msg", to: "bob", text: "hi" }],
    ["/w bob hi", { kind: "msg", to: "bob", text: "hi" }],
    ["/msg bob", { kind: "usage", message: "Usage: /msg NAME TEXT" }],
    ["/msg bob   ", { kind: "usage", message: "Usage: /msg NAME TEXT" }],
    ["/msg", { kind: "usage", message: "Usage: /msg NAME TEXT" }],
    ["/me waves", { kind: "me", text: "waves" }],
    ["/me waves at 你好 👋", { kind: "me", text: "waves at 你好 👋" }],
    ["/me", { kind: "usage", message: "Usage: /me ACTION" }],
    ["/me   ", { kind: "usage", message: "Usage: /me ACTION" }],
    ["/nick new", { kind: "nick", name: "new" }],
    ["/nick  new  ", { kind: "nick", name: "new" }],
    ["/nick two words", { kind: "usage", message: "Usage: /nick NEW" }],
    ["/nick", { kind: "usage", message: "Usage: /nick NEW" }],
    ["/who", { kind: "who" }],
    ["/names", { kind: "who" }],
    ["/help", { kind: "help" }],
    ["/?", { kind: "help" }],
    ["/quit", { kind: "quit" }],
    ["/QUIT", { kind: "quit" }],
    ["/Quit now", { kind: "quit", reason: "now" }],
    ["/quit gone home", { kind: "quit", reason: "gone home" }],
    ["/leave", { kind: "leave" }],
    ["/leave dev", { kind: "leave", room: "#dev" }],
    ["/leave #dev gone home", { kind: "leave", room: "#dev", reason: "gone home" }],
    ["/part see you later", { kind: "leave", reason: "see you later" }],
    ["/exit", { kind: "quit" }],
    ["/q", { kind: "quit" }],
    ["//literal", { kind: "say", text: "/literal" }],
    ["//quit", { kind: "say", text: "/quit" }],
    ["//", { kind: "say", text: "/" }],
    ["/unknowncmd", { kind: "unknown", name: "unknowncmd" }],
    ["/unknowncmd with args", { kind: "unknown", name: "unknowncmd" }],
    ["/", { kind: "unknown", name: "" }],
    ["hello there", { kind: "say", text: "hello there" }],
    ["你好世界 👨‍👩‍👧", { kind: "say", text: "你好世界 👨‍👩‍👧" }],
    ["   leading spaces", { kind: "say", text: "   leading spaces" }],
    ["  /quit", { kind: "say", text: "  /quit" }],
    ["a/b", { kind: "say", text: "a/b" }],
  ];
  for (const [line, command] of cases) {
    await t.step(JSON.stringify(line), () => deepEqual(parseCommand(line), command));
  }
});

Deno.test("helpLines lists every command", () => {
  const lines = helpLines();
  equal(lines[0], "Commands:");
  for (const command of COMMANDS) {
    ok(
      lines.some((line) => line.includes(command.usage) && line.includes(command.summary)),
      `no line for ${command.usage}`,
    );
  }
  for (const name of ["/msg", "/me", "/nick", "/who", "/help", "/quit", "//TEXT"]) {
    ok(lines.some((line) => line.trimStart().startsWith(name + " ")), `no line for ${name}`);
  }
});

Deno.test("helpLines only lists commands that parseCommand knows", () => {
  for (const command of COMMANDS) {
    const [word] = command.usage.split(" ");
    const kind = parseCommand(`${word} x`).kind;
    ok(kind !== "unknown" && kind !== "say", `${word} parses as ${kind}`);
  }
});

Deno.test("helpLines aligns every summary in one column", () => {
  const lines = helpLines().slice(1);
  const columns = new Set(lines.map((line) => /^\s*\S+(?: \S+)*\s{2,}/.exec(line)?.[0].length));
  ok(!columns.has(undefined), lines.join("\n"));
  equal(columns.size, 1, lines.join("\n"));
});

Deno.test("parseAddress reads host and port", async (t) => {
  const cases: Array<[string, string, number]> = [
    ["", "127.0.0.1", DEFAULT_PORT],
    ["host", "host", DEFAULT_PORT],
    ["host:8000", "host", 8000],
    [":9000", "127.0.0.1", 9000],
    ["[::1]:7000", "::1", 7000],
    ["[::1]", "::1", DEFAULT_PORT],
    ["::1", "::1", DEFAULT_PORT],
    ["fe80::1:2", "fe80::1:2", DEFAULT_PORT],
    ["10.0.0.5:0", "10.0.0.5", 0],
    ["example.org:65535", "example.org", 65535],
  ];
  for (const [text, hostname, port] of cases) {
    await t.step(JSON.stringify(text), () => deepEqual(parseAddress(text), { hostname, port }));
  }
});

function isUsageError(pattern: RegExp): (error: unknown) => boolean {
  return (error) =>
    error instanceof CliError && error.exitCode === EXIT_USAGE && pattern.test(error.message);
}

Deno.test("parseAddress rejects a port that is not a number from 0 to 65535", async (t) => {
  const cases: Array<[string, RegExp]> = [
    ["host:notaport", /"notaport"/],
    ["host:70000", /"70000"/],
    ["host:65536", /"65536"/],
    ["host:-1", /"-1"/],
    ["host:", /""/],
    ["[::1]:x", /"x"/],
    ["[::1]:99999", /"99999"/],
  ];
  for (const [text, pattern] of cases) {
    await t.step(JSON.stringify(text), () => {
      throws(() => parseAddress(text), isUsageError(pattern));
    });
  }
});

Deno.test("parsePort reads whole numbers from 0 to 65535 and names the flag otherwise", async (t) => {
  for (const [text, port] of [["0", 0], ["80", 80], ["080", 80], ["65535", 65535]] as const) {
    await t.step(text, () => equal(parsePort(text), port));
  }
  for (const text of ["", " 80", "80 ", "1e3", "0x50", "8.0", "-1", "65536", "123456", "٨٠"]) {
    await t.step(JSON.stringify(text), () => {
      throws(() => parsePort(text), isUsageError(/^Invalid --port /));
    });
  }
  throws(() => parsePort("x", "--listen"), isUsageError(/^Invalid --listen "x"/));
});

Deno.test({
  name: "parseAddress rejects an empty port after a bracketed IPv6 address",
  fn() {
    throws(() => parseAddress("[::1]:"), isUsageError(/""/));
  },
});
