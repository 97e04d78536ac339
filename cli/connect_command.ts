/**
 * `chat connect`: joins a server and chats, line by line.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type ChatClient, connect } from "../client.ts";
import { helpLines, parseCommand } from "../protocol/commands.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { LineDecoder } from "../protocol/line_decoder.ts";
import { formatFrame } from "../protocol/text_format.ts";
import { sanitize } from "../protocol/sanitize.ts";
import { DEFAULT_PORT, formatAddress, parseAddress } from "./_address.ts";
import { CliError, EXIT_USAGE } from "./_errors.ts";
import { onInterrupt } from "./_signals.ts";

/** The text of `chat connect --help`. */
export const CONNECT_HELP = `Join a chat server and talk.

Usage: chat connect [HOST[:PORT]] --name NAME

HOST defaults to 127.0.0.1 and PORT to ${DEFAULT_PORT}; IPv6 addresses go in brackets
([::1]:${DEFAULT_PORT}).

Options:
  -n, --name NAME   the name to use (default: your user name)
  -h, --help        show this help

Type a line and press Enter to send it. Commands:
${helpLines().slice(1).join("\n")}

At the end of input (Ctrl-D, or the end of a pipe) the client waits until the
server has accepted every message, then leaves. Exit code 0 means all of them
were accepted.`;

const encoder = new TextEncoder();
const MAX_INPUT_LINE_BYTES = 1024 * 1024;

function print(line: string): void {
  Deno.stdout.writeSync(encoder.encode(line + "\n"));
}

function warn(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

function defaultName(): string | undefined {
  try {
    return Deno.env.get("USER") ?? Deno.env.get("USERNAME");
  } catch {
    return undefined;
  }
}

async function* stdinLines(): AsyncGenerator<string> {
  const decoder = new LineDecoder({ maxBytes: MAX_INPUT_LINE_BYTES, fatal: false });
  const buffer = new Uint8Array(16 * 1024);
  while (true) {
    const read = await Deno.stdin.read(buffer);
    if (read === null) break;
    for (const line of decoder.push(buffer.subarray(0, read))) {
      if (line.ok) yield line.text;
      else warn(`! Line is longer than ${MAX_INPUT_LINE_BYTES} bytes; it was not sent`);
    }
  }
  if (decoder.pendingBytes > 0) {
    for (const line of decoder.push(encoder.encode("\n"))) if (line.ok) yield line.text;
  }
}

/** Runs the line-based client until input ends, `/quit`, or the server goes away. */
async function chat(client: ChatClient): Promise<number> {
  let failed = false;
  let leaving = false;
  const inFlight = new Set<Promise<unknown>>();
  const track = (promise: Promise<unknown>, what: string) => {
    const tracked = promise.catch((error) => {
      failed = true;
      warn(`! ${what} failed: ${error instanceof Error ? sanitize(error.message) : String(error)}`);
    }).finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  };
  const events = (async () => {
    for await (const event of client) {
      const text = formatFrame(event);
      if (text !== undefined) print(text);
    }
    if (!leaving) {
      warn("*** Connection to the server was lost");
      Deno.exit(1);
    }
  })();
  const leave = async () => {
    if (leaving) return;
    await Promise.all(inFlight);
    leaving = true;
    await client.close();
    await events;
  };
  const stop = onInterrupt(() => {
    leave().then(() => Deno.exit(failed ? 1 : 0));
  });
  try {
    for await (const line of stdinLines()) {
      if (line.trim() === "") continue;
      const command = parseCommand(line);
      switch (command.kind) {
        case "say":
          track(client.send(command.text), "Sending");
          break;
        case "me":
          track(client.send(command.text, { action: true }), "Sending");
          break;
        case "msg":
          track(client.dm(command.to, command.text), "Private message");
          break;
        case "nick":
          track(
            client.nick(command.name).then((name) =>
              print(`*** You are now known as ${sanitize(name)}`)
            ),
            "Renaming",
          );
          break;
        case "who":
          track(
            client.who().then((names) =>
              print(`*** In ${client.room}: ${names.map((name) => sanitize(name)).join(", ")}`)
            ),
            "Listing",
          );
          break;
        case "help":
          for (const help of helpLines()) print(help);
          break;
        case "usage":
          warn(`! ${command.message}`);
          break;
        case "unknown":
          warn(`! Unknown command "/${sanitize(command.name)}"; type /help for the list`);
          break;
        case "quit":
          await leave();
          return failed ? 1 : 0;
      }
    }
    await leave();
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
    args,
    strict: true,
    allowPositionals: true,
    options: {
      name: { type: "string", short: "n" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    print(CONNECT_HELP);
    return 0;
  }
  if (positionals.length > 1) {
    throw new CliError(
      `Unexpected argument "${positionals[1]}"; see "chat connect --help"`,
      EXIT_USAGE,
    );
  }
  const { hostname, port } = parseAddress(positionals[0] ?? "");
  const name = values.name ?? defaultName();
  if (name === undefined) {
    throw new CliError('Missing --name: choose a name with "--name NAME"', EXIT_USAGE);
  }
  let client: ChatClient;
  try {
    client = await connect({ hostname, port, name });
  } catch (error) {
    if (
      error instanceof ProtocolError &&
      (error.code === "name_taken" || error.code === "invalid_name")
    ) {
      throw new CliError(`${error.message}; choose another with --name`);
    }
    throw error;
  }
  const others = client.members.filter((member) => member !== client.name);
  print(
    `*** Connected to ${formatAddress(hostname, port)} as ${
      sanitize(client.name)
    } in ${client.room}` +
      (others.length
        ? ` with ${others.map((other) => sanitize(other)).join(", ")}`
        : "; nobody else is here yet") +
      ". Type /help for commands.",
  );
  return await chat(client);
}
