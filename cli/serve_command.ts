/**
 * `chat serve`: runs a server until Ctrl-C.
 *
 * @module
 */

import { parseArgs } from "node:util";
import denoConfig from "../deno.json" with { type: "json" };
import { serve } from "../server.ts";
import { DEFAULT_LIMITS, type Limits } from "../protocol/limits.ts";
import { configDir, dataDir, defaultDatabase } from "../_common/paths.ts";
import { dirname, join } from "node:path";
import { clock } from "../protocol/text_format.ts";
import { sanitize } from "../protocol/sanitize.ts";
import { DEFAULT_PORT, formatAddress, parsePort } from "./_address.ts";
import { CliError, EXIT_USAGE } from "./_errors.ts";
import { joinNegativeValues } from "./_args.ts";
import { onInterrupt } from "./_signals.ts";
import { shortFingerprint } from "../protocol/fingerprint.ts";

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
    flag: "max-total-queue-bytes",
    key: "maxQueuedBytes",
    help: "bytes queued for all clients together",
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
  {
    flag: "flood-timeout",
    key: "floodTimeout",
    help: "ms a connection may keep 32 KiB of lines waiting before it is dropped",
  },
  { flag: "max-rooms", key: "maxRoomsPerUser", help: "rooms one user can be in" },
  {
    flag: "max-presence",
    key: "maxPresence",
    help: "members above which a room stops announcing joins",
  },
  { flag: "max-file-bytes", key: "maxFileBytes", help: "largest file that can be sent, in bytes" },
  { flag: "max-transfers", key: "maxTransfersPerUser", help: "files one user may send at once" },
  { flag: "offer-timeout", key: "offerTimeout", help: "ms a file offer waits to be accepted" },
  {
    flag: "login-failure-rate",
    key: "loginFailureRate",
    help: "failed logins per second the server tolerates",
  },
  {
    flag: "login-backoff-max",
    key: "loginBackoffMax",
    help: "longest wait, in ms, for an address after failed logins",
  },
];

/** The text of `chat serve --help`. */
export const SERVE_HELP = `Start a chat server.

Usage: chat serve [options]

Options:
  --host HOST                address to listen on (default: 0.0.0.0, every interface)
  --port PORT                port to listen on, 0 for any free port (default: ${DEFAULT_PORT})
  --data PATH                history database, or :memory: to keep nothing
                             (default: ${describeDefaultData()});
                             postgres://USER@HOST:PORT/DB makes this server one node
                             of several sharing that database (its password from
                             CHAT_DATABASE_PASSWORD or PGPASSWORD)
  --node ID                  with postgres://, this node's id among the others
                             (default: host, process id and a random part)
  --history N                messages replayed to someone joining a room (default: 50)
  --keep-messages N          messages kept per room, 0 for all (default: 100000)
  --keep-days N              days messages are kept, 0 for ever (default: 365)
  --resume-grace MS          how long a reconnecting user's name and rooms are held
                             after their connection breaks (default: 30000)
  --tls                      serve TLS with a self-signed certificate, made once and kept
                             in the data folder; prints its fingerprint for clients
  --tls-cert FILE            serve TLS with this certificate (PEM)...
  --tls-key FILE             ...and this private key (PEM)
  --plain-port PORT          with TLS, also accept plain connections (for nc) on PORT
  --web-port PORT            serve the web page on PORT (default: the port + 1); with
                             TLS, over TLS
  --no-web                   serve no web page
  --irc-port PORT            also accept IRC clients (irssi, WeeChat) on PORT; with TLS,
                             it speaks TLS too (default: off)
  --irc-server-name NAME     the server's name to IRC clients, a host name with a dot
                             (default: --host when it is a name, else chat.server)
  --public-port PORT         clients reach the server on PORT too (port forwarding):
                             key proofs naming it are accepted (repeatable)
  --password PASSWORD        every client must give this password (better: set
                             CHAT_PASSWORD, which stays out of the process list)
  --op FINGERPRINT           the key fingerprint of an operator (repeatable; also read,
                             one per line, from the "operators" file in the config folder)
  --proxy-protocol           connections to the chat and IRC ports start with a PROXY
                             header (HAProxy's send-proxy, v1 or v2): per-address limits
                             and bans see the client's address; only when nobody but the
                             proxy can reach those ports (default: off)
  -h, --help                 show this help

Limits (every one has a default; see README.md):
${
  LIMIT_FLAGS.map(({ flag, key, help }) =>
    `  --${`${flag} N`.padEnd(25)}${help} (default: ${DEFAULT_LIMITS[key]})`
  ).join("\n")
}

People join with "chat connect HOST:PORT --name NAME", "nc HOST PORT", a web browser or
(with --irc-port) any IRC client.
Ctrl-C stops the server: everyone is told, then disconnected.`;

/** The IRC server name given (`serve` checks it). */
function ircName(name: string | undefined, port: string | undefined): string | undefined {
  if (name !== undefined && port === undefined) {
    throw new CliError("--irc-server-name goes with --irc-port", EXIT_USAGE);
  }
  return name;
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/** The certificate to serve, from files or made once and kept in the data folder. */
async function tlsOptions(
  values: { tls?: boolean; "tls-cert"?: string; "tls-key"?: string; data?: string },
): Promise<{ pem: { cert: string; key: string }; fingerprint: string } | undefined> {
  const certFile = values["tls-cert"];
  const keyFile = values["tls-key"];
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new CliError(
      "Give both --tls-cert and --tls-key, or --tls for a self-signed certificate",
      EXIT_USAGE,
    );
  }
  if (certFile === undefined && !values.tls) return undefined;
  const { certificateFingerprint, loadOrCreateCertificate, localHosts } = await import(
    "../_common/tls.ts"
  );
  if (certFile !== undefined) {
    const read = async (file: string) => {
      try {
        return await Deno.readTextFile(file);
      } catch (error) {
        throw new CliError(
          `Cannot read "${file}": ${error instanceof Error ? error.message : error}`,
        );
      }
    };
    const cert = await read(certFile);
    const key = await read(keyFile!);
    return { pem: { cert, key }, fingerprint: await certificateFingerprint(cert) };
  }
  const dir = values.data !== undefined && values.data !== ":memory:" &&
      !isDatabaseUrl(values.data)
    ? dirname(values.data)
    : dataDir();
  const made = await loadOrCreateCertificate(dir, localHosts());
  if (made.created) console.log(`Created a self-signed certificate in ${made.certPath}`);
  return { pem: { cert: made.cert, key: made.key }, fingerprint: made.fingerprint };
}

/** Operators from --op and from the "operators" file in the config folder. */
async function operatorList(flags: string[]): Promise<string[]> {
  const lines = [...flags];
  try {
    const file = await Deno.readTextFile(join(configDir(), "operators"));
    lines.push(...file.split("\n").map((line) => line.replace(/#.*/, "").trim()).filter(Boolean));
  } catch {
    // No operators file.
  }
  for (const line of lines) {
    if (!/^SHA256:[A-Za-z0-9+/]{43}$/.test(line)) {
      throw new CliError(
        `Invalid operator "${line}": give a key fingerprint as /whois shows it (SHA256:…)`,
        EXIT_USAGE,
      );
    }
  }
  return [...new Set(lines)];
}

/** Whether `--data` names a PostgreSQL database rather than a file. */
function isDatabaseUrl(data: string): boolean {
  return /^postgres(?:ql)?:\/\//i.test(data);
}

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

const logEncoder = new TextEncoder();

/**
 * Writes a line of the server's log: straight to standard output, not through
 * `console.log`, whose formatting costs more than the line itself, once for
 * every join and leave.
 */
function log(line: string): void {
  // Names and reasons come from the network: they must not control the operator's terminal.
  const bytes = logEncoder.encode(
    `[${clock(new Date().toISOString())}] ${sanitize(line, { newlines: true })}\n`,
  );
  try {
    for (let offset = 0; offset < bytes.length;) {
      offset += Deno.stdout.writeSync(bytes.subarray(offset));
    }
  } catch {
    // Standard output is gone (a closed pipe): the server goes on without its log.
  }
}

/**
 * Runs `chat serve`.
 *
 * @param args The arguments after `serve`.
 * @returns The exit code.
 */
export async function serveCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args: joinNegativeValues(args),
    strict: true,
    allowPositionals: false,
    options: {
      host: { type: "string" },
      port: { type: "string" },
      ...Object.fromEntries(LIMIT_FLAGS.map(({ flag }) => [flag, { type: "string" as const }])),
      data: { type: "string" },
      node: { type: "string" },
      history: { type: "string" },
      "keep-messages": { type: "string" },
      "keep-days": { type: "string" },
      "resume-grace": { type: "string" },
      tls: { type: "boolean" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      "plain-port": { type: "string" },
      "irc-port": { type: "string" },
      "irc-server-name": { type: "string" },
      "web-port": { type: "string" },
      "no-web": { type: "boolean" },
      "public-port": { type: "string", multiple: true },
      password: { type: "string" },
      op: { type: "string", multiple: true },
      "proxy-protocol": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(SERVE_HELP);
    return 0;
  }
  const hostname = values.host ?? "0.0.0.0";
  if (values.node !== undefined && !isDatabaseUrl(values.data ?? "")) {
    throw new CliError("--node goes with --data postgres://…: one node of several", EXIT_USAGE);
  }
  if (values.node !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(values.node)) {
    throw new CliError(
      `Invalid --node "${values.node.slice(0, 80)}": use up to 64 letters, digits, ".", "_" or "-"`,
      EXIT_USAGE,
    );
  }
  if (values["proxy-protocol"] && (values.tls || values["tls-cert"] !== undefined)) {
    throw new CliError(
      "--proxy-protocol does not go with --tls: let the proxy end TLS and pass plain connections",
      EXIT_USAGE,
    );
  }
  if (values["plain-port"] !== undefined && !values.tls && values["tls-cert"] === undefined) {
    throw new CliError(
      "--plain-port goes with --tls or --tls-cert: without TLS, --port is already plain",
      EXIT_USAGE,
    );
  }
  const tls = await tlsOptions(values);
  const operators = await operatorList(values.op ?? []);
  const password = values.password ?? env("CHAT_PASSWORD");
  const port = values.port === undefined ? DEFAULT_PORT : parsePort(values.port);
  if (values["no-web"] && values["web-port"] !== undefined) {
    throw new CliError("Give --web-port or --no-web, not both", EXIT_USAGE);
  }
  const webPort = values["no-web"]
    ? undefined
    : values["web-port"] !== undefined
    ? parsePort(values["web-port"], "--web-port")
    : port === 0
    ? 0
    : port + 1;
  if (webPort !== undefined && webPort > 65535) {
    throw new CliError(
      `Cannot serve the web page on port ${webPort}: choose one with --web-port, or --no-web`,
      EXIT_USAGE,
    );
  }
  const serveOptions = {
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
    tls: tls?.pem,
    plainPort: values["plain-port"] === undefined
      ? undefined
      : parsePort(values["plain-port"], "--plain-port"),
    webPort,
    ircPort: values["irc-port"] === undefined
      ? undefined
      : parsePort(values["irc-port"], "--irc-port"),
    ircServerName: ircName(values["irc-server-name"], values["irc-port"]),
    publicPorts: (values["public-port"] ?? []).map((port) => parsePort(port, "--public-port")),
    password,
    operators,
    historyOnJoin: count(values.history, "--history", 50),
    keepMessages: count(values["keep-messages"], "--keep-messages", 100_000),
    keepDays: count(values["keep-days"], "--keep-days", 365),
    resumeGrace: count(values["resume-grace"], "--resume-grace", 30_000),
    onLog: log,
    databasePassword: env("CHAT_DATABASE_PASSWORD") ?? env("PGPASSWORD"),
    node: values.node,
    proxyProtocol: values["proxy-protocol"] === true,
  };
  let server;
  try {
    server = await serve(serveOptions);
  } catch (error) {
    // A bad --irc-server-name is refused before anything is opened: a usage error.
    if (error instanceof TypeError && error.message.startsWith("Invalid IRC server name")) {
      throw new CliError(error.message.replace("IRC server name", "--irc-server-name"), EXIT_USAGE);
    }
    // The page's default port (the chat port + 1) may be taken: serve the chat without it.
    if (
      !(error instanceof Deno.errors.AddrInUse) || values["web-port"] !== undefined ||
      webPort === undefined || !error.message.includes("web page")
    ) throw error;
    console.log(`${error.message}; serving no web page (choose its port with --web-port)`);
    server = await serve({ ...serveOptions, webPort: undefined });
  }
  const actual = server.addr.port;
  console.log(
    `chat ${denoConfig.version} listening on ${formatAddress(server.addr.hostname, actual)}`,
  );
  console.log(
    server.data === ":memory:"
      ? "History is kept in memory only"
      : `History is stored in ${server.data}`,
  );
  if (tls !== undefined) {
    console.log(
      `TLS certificate fingerprint: ${tls.fingerprint} (short: ${
        shortFingerprint(tls.fingerprint)
      })`,
    );
  }
  if (password !== undefined) console.log("Clients need the password");
  if (operators.length > 0) console.log(`Operators: ${operators.join(", ")}`);
  console.log("Others join with:");
  // The short form: what people read out and type; --fingerprint takes both.
  const trust = tls === undefined ? "" : ` --fingerprint ${shortFingerprint(tls.fingerprint)}`;
  for (const host of joinHosts(server.addr.hostname)) {
    console.log(`  chat connect ${formatAddress(host, actual)} --name NAME${trust}`);
    if (tls === undefined) console.log(`  nc ${host} ${actual}`);
    else if (server.plainAddr !== undefined) console.log(`  nc ${host} ${server.plainAddr.port}`);
    if (server.webAddr !== undefined) {
      const scheme = tls === undefined ? "http" : "https";
      console.log(`  Open ${scheme}://${formatAddress(host, server.webAddr.port)}/ in a browser`);
    }
    if (server.ircAddr !== undefined) {
      const port = server.ircAddr.port;
      console.log(`  irssi -c ${host} -p ${port}${tls === undefined ? "" : " (TLS)"}`);
    }
  }
  // Ready for Ctrl-C (and SIGTERM) before saying so.
  const stop = onInterrupt(() => {
    log(`Shutting down; ${server.users} connected`);
    server.close();
  });
  console.log("Press Ctrl-C to stop.");
  await server.finished;
  stop();
  log("Server stopped");
  return 0;
}
