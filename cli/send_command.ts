/**
 * `chat send`: joins, sends, waits for the acknowledgements, leaves. For cron
 * jobs, CI notifications and `tail -f log | chat send`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { LOBBY } from "../protocol/limits.ts";
import { ProtocolError, retryAfter } from "../protocol/errors.ts";
import { delay } from "../_common/delay.ts";
import { roomName } from "../protocol/commands.ts";
import { sanitize } from "../protocol/sanitize.ts";
import { DEFAULT_PORT } from "./_address.ts";
import { CliError, EXIT_USAGE } from "./_errors.ts";
import { joinNegativeValues } from "./_args.ts";
import { print, stdinLines, warn } from "./connect_command.ts";
import { plain } from "../tui/entries.ts";
import { join, JOIN_HELP, JOIN_OPTIONS } from "./_join.ts";

/** How long `chat send` waits for the server by default, in seconds. */
export const DEFAULT_TIMEOUT_SECONDS = 30;
/** Exit code when the server did not answer in time. */
export const EXIT_TIMEOUT = 3;

/** The text of `chat send --help`. */
export const SEND_HELP = `Send messages and leave.

Usage: chat send [HOST[:PORT]] [options] [TEXT...]

HOST defaults to 127.0.0.1 and PORT to ${DEFAULT_PORT}. The words of TEXT make one
message; without TEXT, every line of standard input is a message
(tail -f app.log | chat send --name app).

Options:
${JOIN_HELP}
  -r, --room ROOM         the room to send to, "#" optional (default: ${LOBBY})
  --timeout SECONDS       how long to wait for the server to connect and to accept each
                          message (default: ${DEFAULT_TIMEOUT_SECONDS})
  -h, --help              show this help

Exit code 0 when the server accepted every message, ${EXIT_TIMEOUT} when it did not answer
in time, 1 otherwise.`;

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
      timeout: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    print(plain(SEND_HELP));
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
  const seconds = values.timeout === undefined ? DEFAULT_TIMEOUT_SECONDS : Number(values.timeout);
  if (!(seconds > 0) || !Number.isFinite(seconds)) {
    throw new CliError(
      `Invalid --timeout "${values.timeout}": expected a number of seconds above 0`,
      EXIT_USAGE,
    );
  }
  const timeout = seconds * 1000;
  // A pipe that runs for days rides out a server restart, but gives up on a server that is gone.
  let client;
  try {
    client = await join(address, values, { maxAttempts: 10 }, timeout, true);
  } catch (error) {
    // No welcome within --timeout is the server not answering in time, like an unanswered message.
    if (error instanceof ProtocolError && error.code === "timeout") {
      throw new CliError(error.message, EXIT_TIMEOUT);
    }
    throw error;
  }
  let failed = 0;
  let timedOut = 0;
  let sent = 0;
  const late = (error: unknown) => error instanceof DOMException && error.name === "TimeoutError";
  // One message at a time, in order: a refusal for sending too fast is waited out and the
  // message sent again, so a long pipe is paced by the server instead of losing lines.
  const send = async (text: string) => {
    const signal = AbortSignal.timeout(timeout);
    while (true) {
      try {
        await client.send(text, { room, signal });
        sent++;
        return;
      } catch (error) {
        const wait = error instanceof ProtocolError ? retryAfter(error) : undefined;
        if (wait !== undefined && !signal.aborted) {
          await delay(wait, signal).catch(() => {});
          if (!signal.aborted) continue;
        }
        failed++;
        const timedOutNow = late(error) || signal.aborted;
        if (timedOutNow) timedOut++;
        warn(
          plain(
            `chat: Message not sent: ${
              timedOutNow
                ? `no answer from the server within ${seconds} s`
                : sanitize(error instanceof Error ? error.message : String(error))
            }`,
          ),
        );
        return;
      }
    }
  };
  try {
    if (room !== LOBBY) {
      try {
        await client.join(room, { history: 0, signal: AbortSignal.timeout(timeout) });
      } catch (error) {
        if (!late(error)) throw error;
        throw new CliError(
          `Cannot join "${sanitize(room)}": no answer from the server within ${seconds} s`,
          EXIT_TIMEOUT,
        );
      }
    }
    if (words.length > 0) await send(words.join(" "));
    else {
      for await (const line of stdinLines()) {
        if (client.closed) throw new CliError("The connection to the server was lost; giving up");
        if (line.trim() !== "") await send(line);
      }
    }
  } finally {
    await client.close({ timeout: Math.min(timeout, 5000) });
  }
  if (failed > 0) warn(plain(`chat: ${failed} of ${failed + sent} messages were not accepted`));
  return timedOut > 0 ? EXIT_TIMEOUT : failed > 0 ? 1 : 0;
}
