/**
 * `chat connect`: joins a server and chats. On a terminal it runs the
 * full-screen client; with a pipe on either side it works line by line.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { ChatClient, ChatEvent, IncomingOffer, SentDm, SentMessage } from "../client.ts";
import { ChatLog } from "../tui/chat_log.ts";
import { formatBytes } from "../tui/entries.ts";
import { join, JOIN_HELP, JOIN_OPTIONS } from "./_join.ts";
import { helpLines, parseCommand } from "../protocol/commands.ts";
import { LineDecoder } from "../protocol/line_decoder.ts";
import { sanitize } from "../protocol/sanitize.ts";
import { entryFor, flatten, jsonLine, notice, plain, type Rendered } from "../tui/entries.ts";
import { colorDepth, createStyle, wantsColor } from "../tui/style.ts";
import { runInteractive } from "./_interactive.ts";
import { DEFAULT_PORT, formatAddress, parseAddress } from "./_address.ts";
import { reportedByCommand, runCommand } from "./_dispatch.ts";
import { CliError, EXIT_USAGE } from "./_errors.ts";
import { joinNegativeValues } from "./_args.ts";
import { onInterrupt } from "./_signals.ts";

/** The text of `chat connect --help`. */
export const CONNECT_HELP = `Join a chat server and talk.

Usage: chat connect [HOST[:PORT]] [options]

HOST defaults to 127.0.0.1 and PORT to ${DEFAULT_PORT}; IPv6 addresses go in brackets
([::1]:${DEFAULT_PORT}). Several addresses separated by commas (host1,host2:7778) are
servers of one chat: when one cannot be reached, the next is tried.

Options:
${JOIN_HELP}
  --json                  print one JSON object per event (for scripts and jq)
  --no-color              no colours (NO_COLOR=1 does the same)
  --bell                  ring the terminal bell when someone mentions you or writes to you
  --no-reconnect          exit when the connection breaks instead of reconnecting
  --downloads DIR         where accepted files go (default: ~/Downloads)
  --log DIR               keep a plain-text log per room and conversation per day in DIR
  -h, --help              show this help

Type a line and press Enter to send it. Commands:
${helpLines().slice(1).join("\n")}

On a terminal: Up/Down recall earlier lines, Tab completes names and commands,
PageUp/PageDown scroll, Ctrl-C or Ctrl-D leaves. With a pipe, each input line
is one message; at the end of input the client waits until the server has
accepted every message, then leaves. Exit code 0 means all were accepted.`;

const encoder = new TextEncoder();
const MAX_INPUT_LINE_BYTES = 1024 * 1024;

/**
 * Writes a line to standard output: only {@linkcode Rendered} text, which the
 * output layer has sanitised.
 */
export function print(line: Rendered): void {
  Deno.stdout.writeSync(encoder.encode(line + "\n"));
}

/** Writes a line to standard error: only {@linkcode Rendered} text. */
export function warn(line: Rendered): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

/**
 * Lines of standard input, split on `\n` (a `\r` before it is dropped).
 *
 * @returns The lines.
 */
export async function* stdinLines(): AsyncGenerator<string> {
  const decoder = new LineDecoder({ maxBytes: MAX_INPUT_LINE_BYTES, fatal: false });
  const buffer = new Uint8Array(16 * 1024);
  while (true) {
    const read = await Deno.stdin.read(buffer);
    if (read === null) break;
    for (const line of decoder.push(buffer.subarray(0, read))) {
      if (line.ok) yield line.text;
      else warn(plain(`! Line is longer than ${MAX_INPUT_LINE_BYTES} bytes; it was not sent`));
    }
  }
  if (decoder.pendingBytes > 0) {
    for (const line of decoder.push(encoder.encode("\n"))) if (line.ok) yield line.text;
  }
}

/** Runs the line-based client until input ends, `/quit`, or the server goes away. */
async function chatByLines(
  client: ChatClient,
  json: boolean,
  color: boolean,
  downloads: string | undefined,
  log: string | undefined,
): Promise<number> {
  const chatLog = log === undefined ? undefined : new ChatLog(log, (error) => {
    warn(plain(`! Cannot write the log in "${log}": ${error.message}`));
  });
  const style = createStyle(color, { colors: colorDepth() });
  const plainStyle = createStyle(false);
  let failed = false;
  let leaving = false;
  const inFlight = new Set<Promise<unknown>>();
  const track = (request: Promise<unknown>) => {
    inFlight.add(request);
    request.finally(() => inFlight.delete(request));
  };
  let current = client.room;
  const offers = new Map<string, IncomingOffer>();
  const output = {
    offers,
    downloads,
    progress: (id: string, label: string, bytes: number, total: number) => {
      if (bytes === total) {
        warn(
          flatten(notice(plainStyle, `${label}: ${formatBytes(total)} done (${id.slice(0, 6)})`)),
        );
      }
    },
    room: () => current,
    switchTo: (room: string) => void (current = room),
    info: (text: string) =>
      json ? warn(flatten(notice(plainStyle, text))) : print(flatten(notice(style, text))),
    error: (text: string, requestFailed: boolean) => {
      if (requestFailed) failed = true;
      warn(flatten(notice(plainStyle, text, "error")));
    },
    show: (event: ChatEvent) => {
      if (json) return print(jsonLine(event));
      const item = entryFor(event, {
        self: client.name,
        style,
        manyRooms: client.joined.length > 1,
      });
      if (item !== undefined) print(flatten(item));
    },
    sent: (sent: SentMessage) => chatLog?.write({ type: "message", ...sent }, client.name),
    sentDm: (sent: SentDm) => chatLog?.write({ type: "dm", ...sent }, client.name),
    clear: () => {},
  };
  const events = (async () => {
    for await (const event of client) {
      if (event.type === "offer") offers.set(event.transfer, event);
      chatLog?.write(event, client.name);
      if (json) {
        print(jsonLine(event));
        continue;
      }
      if (reportedByCommand(event)) continue;
      const item = entryFor(event, {
        self: client.name,
        style,
        manyRooms: client.joined.length > 1,
      });
      if (item !== undefined) print(flatten(item));
    }
    if (!leaving) {
      warn(plain("*** Connection to the server was lost"));
      Deno.exit(1);
    }
  })();
  const leave = async (reason?: string) => {
    if (leaving) return;
    await Promise.all(inFlight);
    leaving = true;
    await client.close(reason === undefined ? {} : { reason });
    await events;
    await chatLog?.flush();
  };
  const stop = onInterrupt(() => {
    leave().then(() => Deno.exit(failed ? 1 : 0));
  });
  try {
    let reason: string | undefined;
    for await (const line of stdinLines()) {
      if (line.trim() === "") continue;
      const command = parseCommand(line);
      if (runCommand(client, command, output, track) === "quit") {
        reason = command.kind === "quit" ? command.reason : undefined;
        break;
      }
    }
    await leave(reason);
    return failed ? 1 : 0;
  } finally {
    stop();
  }
}

/**
 * Runs `chat connect`.
 *
 * @param args The arguments after `connect`.
 * @returns The exit code.
 */
export async function connectCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: joinNegativeValues(args),
    strict: true,
    allowPositionals: true,
    options: {
      ...JOIN_OPTIONS,
      json: { type: "boolean" },
      "no-color": { type: "boolean" },
      "no-reconnect": { type: "boolean" },
      downloads: { type: "string" },
      log: { type: "string" },
      bell: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    print(plain(CONNECT_HELP));
    return 0;
  }
  if (positionals.length > 1) {
    throw new CliError(`Unexpected argument "${positionals[1]}"`, EXIT_USAGE);
  }
  const address = positionals[0] ?? "";
  const interactive = !values.json && Deno.stdin.isTerminal() && Deno.stdout.isTerminal();
  // A person waits for the server to come back; a script gives up after about a minute.
  const reconnect = values["no-reconnect"] ? false : interactive ? true : { maxAttempts: 10 };
  const client = await join(address, values, reconnect);
  const { hostname, port } = parseAddress(address.split(",")[0]!);
  const where = formatAddress(hostname, port);
  if (interactive) {
    return await runInteractive(client, {
      address: where,
      color: wantsColor(Deno.stdout, values["no-color"] === true),
      colors: colorDepth(),
      security: values.fingerprint !== undefined
        ? "pinned"
        : values.tls || values.ca !== undefined
        ? "verified"
        : undefined,
      bell: values.bell === true,
      downloads: values.downloads,
      log: values.log,
    });
  }
  const color = !values.json && wantsColor(Deno.stdout, values["no-color"] === true);
  const others = client.members.filter((member) => member !== client.name).map((name) =>
    sanitize(name)
  );
  const crowd = client.memberCount - 1;
  const welcome = `Connected to ${where} as ${sanitize(client.name)} in ${client.room}` +
    (crowd > others.length
      ? ` with ${crowd} others (too many to list)`
      : others.length
      ? ` with ${others.join(", ")}`
      : "; nobody else is here yet") +
    ". Type /help for commands.";
  if (values.json) warn(flatten(notice(createStyle(false), welcome)));
  else print(flatten(notice(createStyle(color), welcome)));
  return await chatByLines(client, values.json === true, color, values.downloads, values.log);
}
