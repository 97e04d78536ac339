/**
 * `chat send`: joins, sends, waits for the acknowledgements, leaves. For cron
 * jobs, CI notifications and `tail -f log | chat send`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { LOBBY } from "../protocol/limits.ts";
import { roomName } from "../protocol/commands.ts";
import { sanitize } from "../protocol/sanitize.ts";
import { DEFAULT_PORT } from "./_address.ts";
import { CliError, EXIT_USAGE } from "./_errors.ts";
import { joinNegativeValues } from "./_args.ts";
import { print, stdinLines, warn } from "./connect_command.ts";
import { join, JOIN_HELP, JOIN_OPTIONS } from "./_join.ts";

/** The text of `chat send --help`. */
export const SEND_HELP = `Send messages and leave.

Usage: chat send [HOST[:PORT]] [options] [TEXT...]

HOST defaults to 127.0.0.1 and PORT to ${DEFAULT_PORT}. The words of TEXT make one
message; without TEXT, every line of standard input is a message
(tail -f app.log | chat send --name app).

Options:
${JOIN_HELP}
  -r, --room ROOM         the room to send to, "#" optional (default: ${LOBBY})
  -h, --help              show this help

Exit code 0 when the server accepted every message, 1 otherwise.`;

/**
 * Runs `chat send`.
 *
 * @param args The arguments after `send`.
 * @returns The exit code.
 */
export async function sendCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: joinNegativeValues(args),
    strict: true,
    allowPositionals: true,
    options: {
      ...JOIN_OPTIONS,
      room: { type: "string", short: "r" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    print(SEND_HELP);
    return 0;
  }
  const [address = "", ...words] = positionals;
  if (address !== "" && words.length === 0 && positionals.length === 1 && /\s/.test(address)) {
    throw new CliError(
      `"${address}" is not an address; put the server first: chat send HOST "TEXT"`,
      EXIT_USAGE,
    );
  }
  const room = values.room === undefined ? LOBBY : roomName(values.room);
  // A pipe that runs for days rides out a server restart, but gives up on a server that is gone.
  const client = await join(address, values, { maxAttempts: 10 });
  let failed = 0;
  let sent = 0;
  const pending = new Set<Promise<void>>();
  const send = (text: string) => {
    const request: Promise<void> = client.send(text, { room }).then(
      () => void sent++,
      (error: Error) => {
        failed++;
        warn(`chat: Message not sent: ${sanitize(error.message)}`);
      },
    ).finally(() => pending.delete(request));
    pending.add(request);
  };
  try {
    if (room !== LOBBY) await client.join(room, { history: 0 });
    if (words.length > 0) send(words.join(" "));
    else {
      for await (const line of stdinLines()) {
        if (client.closed) throw new CliError("The connection to the server was lost; giving up");
        if (line.trim() !== "") send(line);
      }
    }
    await Promise.all(pending);
  } finally {
    await client.close();
  }
  if (failed > 0) warn(`chat: ${failed} of ${failed + sent} messages were not accepted`);
  return failed > 0 ? 1 : 0;
}
