/**
 * `chat serve`: runs a server until Ctrl-C.
 *
 * @module
 */

import { parseArgs } from "node:util";
import denoConfig from "../deno.json" with { type: "json" };
import { serve } from "../server.ts";
import { DEFAULT_LIMITS, type Limits } from "../protocol/limits.ts";
import { defaultDatabase } from "../_paths.ts";
import { clock } from "../protocol/text_format.ts";
import { DEFAULT_PORT, formatAddress, parsePort } from "./_address.ts";
import { CliError, EXIT_USAGE } from "./_errors.ts";
import { onInterrupt } from "./_signals.ts";

/** The text of `chat serve --help`. */
/** The limits `chat serve` can change, with their flags. */
const LIMIT_FLAGS: readonly { flag: string; key: keyof Limits; help: string }[] = [
  {
    flag: "max-frame-bytes",
    key: "maxFrameBytes",
    help: "longest frame a client may send, in bytes",
  },
  { flag: "max-text", key: "maxTextLength", help: "longest message, in characters" },
  {
    flag: "max-queue-bytes",
    key: "maxSendQueueBytes",
    help: "bytes queued for a client that does not read",
  },
  {
    flag: "handshake-timeout",
    key: "handshakeTimeout",
    help: "ms a new connection has to give a name",
  },
  { flag: "idle-timeout", key: "idleTimeout", help: "ms of silence before a client is dropped" },
  { flag: "max-connections", key: "maxConnections", help: "connections open at once" },
  {
    flag: "max-connections-per-ip",
    key: "maxConnectionsPerIp",
    help: "connections open at once from one address",
  },
  { flag: "connect-rate", key: "connectRate", help: "new connections per second from one address" },
  { flag: "rate-limit", key: "rateLimit", help: "messages per second per connection, sustained" },
  { flag: "rate-burst", key: "rateBurst", help: "messages per connection in a burst" },
  { flag: "max-rooms", key: "maxRoomsPerUser", help: "rooms one user can be in" },
];

/** The text of `chat serve --help`. */
export const SERVE_HELP = `Start a chat server.

Usage: chat serve [options]

Options:
  --host HOST                address to listen on (default: 0.0.0.0, every interface)
  --port PORT                port to listen on, 0 for any free port (default: ${DEFAULT_PORT})
  --data PATH                history database, or :memory: to keep nothing
                             (default: ${describeDefaultData()})
  --history N                messages replayed to someone joining a room (default: 50)
  --keep-messages N          messages kept per room, 0 for all (default: 100000)
  --keep-days N              days messages are kept, 0 for ever (default: 365)
  --resume-grace MS          how long a reconnecting user's name and rooms are held
                             after their connection breaks (default: 30000)
  -h, --help                 show this help

Limits (every one has a default; see README.md):
${
  LIMIT_FLAGS.map(({ flag, key, help }) =>
    `  --${`${flag} N`.padEnd(25)}${help} (default: ${DEFAULT_LIMITS[key]})`
  ).join("\n")
}

People join with "chat connect HOST:PORT --name NAME" or "nc HOST PORT".
Ctrl-C stops the server: everyone is told, then disconnected.`;

function describeDefaultData(): string {
  try {
    return defaultDatabase();
  } catch {
    return "chat.db in your data directory";
  }
}

function count(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value)) {
    throw new CliError(`Invalid ${flag} "${text}": use a whole number, 0 or more`, EXIT_USAGE);
  }
  return value;
}

function positiveInteger(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new CliError(`Invalid ${flag} "${text}": use a whole number above 0`, EXIT_USAGE);
  }
  return value;
}

function joinHosts(hostname: string): string[] {
  if (hostname !== "0.0.0.0" && hostname !== "::" && hostname !== "[::]") return [hostname];
  const hosts: string[] = [];
  try {
    for (const nic of Deno.networkInterfaces()) {
      if (nic.family === "IPv4" && !nic.address.startsWith("127.")) hosts.push(nic.address);
    }
  } catch {
    // Not allowed or not supported: fall back to the host name.
  }
  if (hosts.length === 0) {
    try {
      hosts.push(Deno.hostname());
    } catch {
      hosts.push("localhost");
    }
  }
  return [...new Set(hosts)];
}

function log(line: string): void {
  console.log(`[${clock(new Date().toISOString())}] ${line}`);
}

/**
 * Runs `chat serve`.
 *
 * @param args The arguments after `serve`.
 * @returns The exit code.
 */
export async function serveCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      host: { type: "string" },
      port: { type: "string" },
      ...Object.fromEntries(LIMIT_FLAGS.map(({ flag }) => [flag, { type: "string" as const }])),
      data: { type: "string" },
      history: { type: "string" },
      "keep-messages": { type: "string" },
      "keep-days": { type: "string" },
      "resume-grace": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(SERVE_HELP);
    return 0;
  }
  const hostname = values.host ?? "0.0.0.0";
  const port = values.port === undefined ? DEFAULT_PORT : parsePort(values.port);
  const server = await serve({
    hostname,
    port,
    ...Object.fromEntries(
      LIMIT_FLAGS.map(({ flag, key }) => [
        key,
        positiveInteger(
          (values as Record<string, string | undefined>)[flag],
          `--${flag}`,
          DEFAULT_LIMITS[key],
        ),
      ]),
    ),
    data: values.data ?? defaultDatabase(),
    historyOnJoin: count(values.history, "--history", 50),
    keepMessages: count(values["keep-messages"], "--keep-messages", 100_000),
    keepDays: count(values["keep-days"], "--keep-days", 365),
    resumeGrace: count(values["resume-grace"], "--resume-grace", 30_000),
    onLog: log,
  });
  const actual = server.addr.port;
  console.log(
    `chat ${denoConfig.version} listening on ${formatAddress(server.addr.hostname, actual)}`,
  );
  console.log(
    server.data === ":memory:"
      ? "History is kept in memory only"
      : `History is stored in ${server.data}`,
  );
  console.log("Others join with:");
  for (const host of joinHosts(server.addr.hostname)) {
    console.log(`  chat connect ${formatAddress(host, actual)} --name NAME`);
    console.log(`  nc ${host} ${actual}`);
  }
  console.log("Press Ctrl-C to stop.");
  const stop = onInterrupt(() => {
    log(`Shutting down; ${server.users} connected`);
    server.close();
  });
  await server.finished;
  stop();
  log("Server stopped");
  return 0;
}
