/**
 * The chat server: {@linkcode serve} listens on TCP and relays messages
 * between everyone connected, whether they use the `chat` client, this
 * library, or plain `nc`.
 *
 * @module
 */

import denoConfig from "./deno.json" with { type: "json" };
import { DEFAULT_LIMITS, type Limits } from "./protocol/limits.ts";
import { dirname } from "node:path";
import { IrcDialect } from "./_server/doors/irc.ts";
import { ircServerName } from "./_server/doors/irc_lines.ts";
import { TcpDoor, type TcpDoorOptions } from "./_server/doors/tcp.ts";
import { QueueBudget } from "./_common/send_queue.ts";
import {
  refuseWebSocket,
  WebSocketDoor,
  type WebSocketDoorOptions,
} from "./_server/doors/websocket.ts";
import {
  hostOf,
  originAllowed,
  pageResponse,
  securityHeaders,
  WEBSOCKET_PATH,
} from "./_server/doors/web_page.ts";
import { ChatCore, SqliteStorage, type Storage } from "./_server/core.ts";
import { banTerms } from "./_server/moderation.ts";
import { TokenBucket } from "./_server/token_bucket.ts";
import { StorageError, Store } from "./_server/store.ts";
import { type Listener, listenTls, TlsServerConn } from "./_server/tls_listener.ts";
import { ProxiedConn, readProxyHeader } from "./_server/proxy_protocol.ts";

export { StorageError };

/** Options for {@linkcode serve}. */
export interface ServeOptions extends Partial<Limits> {
  /**
   * The address to listen on.
   *
   * @default {"0.0.0.0"}
   */
  hostname?: string;
  /**
   * The port to listen on; `0` picks any free port (see {@linkcode ChatServer.addr}).
   *
   * @default {7777}
   */
  port?: number;
  /** Closes the server when aborted, like {@linkcode ChatServer.close}. */
  signal?: AbortSignal;
  /**
   * The history database: a file path, or `":memory:"` for a server that
   * forgets everything when it stops. The directory is created if needed.
   * A `postgres://USER@HOST:PORT/DB` URL shares the chat with every server
   * given the same database.
   *
   * @default {":memory:"}
   */
  data?: string;
  /**
   * How many recent messages are replayed to someone joining a room.
   *
   * @default {50}
   */
  historyOnJoin?: number;
  /**
   * Most messages in one `history` answer (and one replay).
   *
   * @default {200}
   */
  maxHistoryPage?: number;
  /**
   * Most messages kept per room; `0` keeps all.
   *
   * @default {100000}
   */
  keepMessages?: number;
  /**
   * Messages older than this many days are removed; `0` keeps them forever.
   *
   * @default {365}
   */
  keepDays?: number;
  /**
   * How long the server holds the name and rooms of a reconnecting client
   * whose connection broke, in ms; `0` announces it as lost at once.
   *
   * @default {30000}
   */
  resumeGrace?: number;
  /**
   * Serve TLS with this certificate and private key (PEM text). Clients then
   * connect with `tls`.
   */
  tls?: { cert: string; key: string };
  /** With `tls`: also listen without TLS on this port, for `nc` users. */
  plainPort?: number;
  /**
   * Also listen for IRC clients on this port (`0` picks any free port; see
   * {@linkcode ChatServer.ircAddr}); with `tls`, it speaks TLS too. Off unless
   * given.
   */
  ircPort?: number;
  /**
   * With `ircPort`: the name the IRC door gives the server, the source of its
   * own lines (`:NAME 001 …`, `PONG NAME`): a host name with a dot, up to 63
   * characters.
   *
   * @default {`hostname` when it is such a name (not an address), else `"chat.server"`}
   */
  ircServerName?: string;
  /**
   * Also serve the web page, and the WebSocket it talks through, on this
   * port (`0`: any free port, see {@linkcode ChatServer.webAddr}); with
   * `tls`, over TLS too. Without it, no page is served.
   */
  webPort?: number;
  /**
   * Ports clients reach this server on besides the ones it listens on (behind
   * port forwarding): a key proof names the port the client dialed, and the
   * server accepts only its own.
   */
  publicPorts?: number[];
  /**
   * A password every client must give. Compared in constant time.
   */
  password?: string;
  /** Fingerprints (`SHA256:…`) of the keys of the operators, who may kick, ban and mute. */
  operators?: readonly string[];
  /** Receives a line for each join, leave and rename, for an operator's log. */
  onLog?: (line: string) => void;
  /**
   * With `data` a `postgres://` URL without a password: the database's
   * password. Never logged.
   */
  databasePassword?: string;
  /**
   * Every connection to the chat and IRC ports starts with a PROXY protocol
   * header (version 1 or 2, as HAProxy's `send-proxy` sends it), whose
   * address is then the client's, for per-address limits, `ip:` bans and the
   * log. A connection without one is closed. Only for ports that nobody but
   * the proxy can reach; not with `tls` (let the proxy end TLS).
   *
   * @default {false}
   */
  proxyProtocol?: boolean;
  /**
   * With `data` a `postgres://` URL: this node's id among the servers sharing
   * the database; unique among them.
   *
   * @default {"HOST-PID-RANDOM"}
   */
  node?: string;
}

/** A running server. */
export interface ChatServer extends AsyncDisposable {
  /** The address the server listens on, with the real port when `0` was asked for. */
  readonly addr: Deno.NetAddr;
  /** With `tls` and `plainPort`: the plain-text address. */
  readonly plainAddr: Deno.NetAddr | undefined;
  /** With `ircPort`: the address IRC clients connect to. */
  readonly ircAddr: Deno.NetAddr | undefined;
  /** With `webPort`: the address of the web page and its WebSocket. */
  readonly webAddr: Deno.NetAddr | undefined;
  /** How many people are connected and named (including those reconnecting). */
  readonly users: number;
  /** Where history is stored, or `":memory:"`. */
  readonly data: string;
  /**
   * Bytes waiting to be written to all clients (bytes many clients share
   * counted once), and whether the server has stopped reading requests until
   * they have gone out (`maxQueuedBytes`).
   */
  readonly queued: { bytes: number; paused: boolean };
  /**
   * Stops accepting, tells every client the server is going away, sends what
   * is queued (waiting at most two seconds for clients that do not read), and
   * closes every connection. Calling it again returns the same promise.
   */
  close(): Promise<void>;
  /** Resolves once the server has closed, however that happened. */
  readonly finished: Promise<void>;
}

/** How long a refused TLS connection may take to finish its handshake and hear why, in ms. */
const REFUSAL_HANDSHAKE_TIMEOUT = 2000;
/** Refused TLS connections from one address that may wait for their handshake to hear why. */
const MAX_REFUSALS_WAITING = 10;
/** How long a connection may take to send its PROXY header (with `proxyProtocol`), in ms. */
const PROXY_HEADER_TIMEOUT = 5000;

/** Rejects when `promise` has not settled within `ms`. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Deno.errors.TimedOut("Handshake timed out")), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Server software name and version, as sent in `welcome`. */
export const SOFTWARE = `chat/${denoConfig.version}`;

class Server implements ChatServer {
  readonly addr: Deno.NetAddr;
  readonly plainAddr: Deno.NetAddr | undefined;
  readonly ircAddr: Deno.NetAddr | undefined;
  readonly webAddr: Deno.NetAddr | undefined;
  #listeners: Listener[];
  #web: Deno.HttpServer<Deno.NetAddr> | undefined;
  #webOptions: WebSocketDoorOptions;
  #webDoors = new Set<WebSocketDoor>();
  #connectionOptions: TcpDoorOptions;
  #tlsOptions: TcpDoorOptions | undefined;
  #core: ChatCore;
  #limits: Limits;
  /** Bytes waiting to be written, for every door. */
  #budget: QueueBudget;
  /** The TCP connections, each with the promise of its read loop. */
  #connections = new Map<TcpDoor, Promise<void>>();
  /** Refused connections per address whose reason is still being written. */
  #refusing = new Map<string, number>();
  #tasks = new Set<Promise<void>>();
  #closing: Promise<void> | undefined;
  #accepting: Promise<void>;
  #finished = Promise.withResolvers<void>();
  #storage: OpenStorage;
  #perIp = new Map<string, number>();
  #connectBuckets = new Map<string, TokenBucket>();
  #sweeper: ReturnType<typeof setInterval>;
  #log: ((line: string) => void) | undefined;
  #proxyProtocol: boolean;
  /** Connections whose PROXY header is being read. */
  #unwrapping = 0;

  constructor(
    listeners: Listener[],
    irc: Listener | undefined,
    web: Deno.HttpServer<Deno.NetAddr> | undefined,
    storage: OpenStorage,
    core: ChatCore,
    limits: Limits,
    options: ServeOptions,
  ) {
    this.#listeners = irc === undefined ? listeners : [...listeners, irc];
    this.ircAddr = irc?.addr;
    this.#storage = storage;
    this.#core = core;
    this.#limits = limits;
    this.#budget = new QueueBudget(limits.maxQueuedBytes);
    this.#log = options.onLog;
    this.#proxyProtocol = options.proxyProtocol === true;
    this.addr = listeners[0]!.addr;
    this.plainAddr = listeners[1]?.addr;
    this.#web = web;
    this.webAddr = web?.addr;
    const ports = [
      ...this.#listeners.map((listener) => listener.addr.port),
      ...(web === undefined ? [] : [web.addr.port]),
      ...(options.publicPorts ?? []),
    ];
    this.#connectionOptions = {
      greeting: `Welcome to chat ${denoConfig.version}.`,
      password: options.password !== undefined,
      ports,
      budget: this.#budget,
      onEnd: (connection) => this.#ended(connection),
    };
    const tls = options.tls;
    if (tls !== undefined) {
      // Key proofs on the TLS port name this certificate.
      const loaded = import("./_common/tls.ts");
      const fingerprint = loaded.then(({ certificateFingerprint }) =>
        certificateFingerprint(tls.cert)
      ).catch(() => undefined);
      const names = loaded.then(({ certificateNames }) => certificateNames(tls.cert))
        .catch(() => []);
      this.#tlsOptions = { ...this.#connectionOptions, fingerprint, names };
    }
    this.#webOptions = tls === undefined ? { ports, budget: this.#budget } : this.#tlsOptions!;
    const accepting = listeners.map((listener, index) =>
      this.#accept(
        listener,
        index === 0 && this.#tlsOptions ? this.#tlsOptions : this.#connectionOptions,
      )
    );
    if (irc !== undefined) {
      const ircServer = ircServerName(options.ircServerName, options.hostname);
      // The IRC port speaks IRC from the first byte, over TLS when the main port does.
      accepting.push(this.#accept(irc, {
        ...(this.#tlsOptions ?? this.#connectionOptions),
        dialect: (host) => new IrcDialect(host, SOFTWARE, options.maxHistoryPage ?? 200, ircServer),
      }));
    }
    this.#accepting = Promise.all(accepting).then(
      () => {},
    );
    const period = Math.min(
      Math.max(Math.min(this.#limits.handshakeTimeout, this.#limits.idleTimeout) / 4, 50),
      5000,
    );
    this.#sweeper = setInterval(() => this.#sweep(), period);
  }

  #sweep(): void {
    const now = performance.now();
    this.#core.maintain();
    for (const connection of this.#connections.keys()) connection.sweep(now);
    for (const door of this.#webDoors) door.sweep(now);
    // Forget connection-rate buckets unused for a minute: they are full again anyway.
    for (const [ip, bucket] of this.#connectBuckets) {
      if (now - bucket.at > 60_000) this.#connectBuckets.delete(ip);
    }
  }

  /** Why a new connection from this address is refused, or `undefined` to accept it. */
  #refusal(ip: string): string | undefined {
    const { maxConnections, maxConnectionsPerIp, connectRate } = this.#limits;
    const ban = this.#core.banned("ip", ip);
    if (ban !== undefined) return `You are banned${banTerms(ban, false)}`;
    if (this.#connections.size + this.#webDoors.size >= maxConnections) {
      return "The server is full; try again later";
    }
    if ((this.#perIp.get(ip) ?? 0) >= maxConnectionsPerIp) {
      return `Too many connections from ${ip} (at most ${maxConnectionsPerIp})`;
    }
    const now = performance.now();
    let bucket = this.#connectBuckets.get(ip);
    if (bucket === undefined) {
      this.#connectBuckets.set(ip, bucket = new TokenBucket(connectRate, 2 * connectRate, now));
    }
    if (!bucket.tryTake(1, now)) return `Too many new connections from ${ip}; wait a moment`;
    return undefined;
  }

  get users(): number {
    return this.#core.size;
  }

  get queued(): { bytes: number; paused: boolean } {
    return { bytes: this.#budget.bytes, paused: this.#budget.paused };
  }

  get data(): string {
    return this.#storage.storage.path;
  }

  get finished(): Promise<void> {
    return this.#finished.promise;
  }

  async #accept(listener: Listener, options: TcpDoorOptions): Promise<void> {
    while (!this.#closing) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (this.#closing || error instanceof Deno.errors.BadResource) return;
        // Out of file descriptors, say: report it, breathe, keep serving the others.
        this.#log?.(
          `Cannot accept a connection: ${error instanceof Error ? error.message : error}`,
        );
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      if (this.#proxyProtocol) this.#unwrap(conn, options);
      else this.#admit(conn, options);
    }
  }

  /** Reads the PROXY header of a connection, then admits it as the client's. */
  #unwrap(conn: Deno.Conn, options: TcpDoorOptions): void {
    const from = (conn.remoteAddr as Deno.NetAddr).hostname;
    if (this.#unwrapping >= this.#limits.maxConnections) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
      return;
    }
    this.#unwrapping++;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), PROXY_HEADER_TIMEOUT);
    const task = readProxyHeader(conn, timeout.signal).then(
      (proxied) => {
        if (proxied === undefined) {
          try {
            conn.close();
          } catch {
            // Already closed.
          }
        } else if (this.#closing !== undefined) proxied.close();
        else this.#admit(proxied, options);
      },
      (error) => {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
        const why = timeout.signal.aborted
          ? "no PROXY header in time"
          : error instanceof Error
          ? error.message
          : String(error);
        this.#log?.(`Closed a connection from ${from}: ${why}`);
      },
    ).finally(() => {
      clearTimeout(timer);
      this.#unwrapping--;
      this.#tasks.delete(task);
    });
    this.#tasks.add(task);
  }

  #admit(conn: Deno.Conn, options: TcpDoorOptions): void {
    const ip = (conn.remoteAddr as Deno.NetAddr).hostname;
    const refusal = this.#refusal(ip);
    if (refusal !== undefined) return this.#refuse(conn, refusal, options.dialect !== undefined);
    try {
      const socket = (conn instanceof ProxiedConn ? conn.conn : conn) as Deno.TcpConn;
      socket.setNoDelay(true);
      socket.setKeepAlive(true);
    } catch {
      // Not a TCP socket; nothing to tune.
    }
    const connection = new TcpDoor(conn, this.#core, this.#limits, options);
    this.#perIp.set(ip, (this.#perIp.get(ip) ?? 0) + 1);
    // The door reports its end (options.onEnd): no promise chain or closure per connection.
    this.#connections.set(connection, connection.run());
  }

  /** A TCP connection ended. */
  #ended(connection: TcpDoor): void {
    this.#connections.delete(connection);
    const left = this.#perIp.get(connection.ip)! - 1;
    if (left === 0) this.#perIp.delete(connection.ip);
    else this.#perIp.set(connection.ip, left);
  }

  /**
   * Answers a request to the web port: the page's files, or the WebSocket
   * upgrade, refused from another site's page (403).
   *
   * @param request The request.
   * @param info Where it comes from.
   * @returns The answer.
   */
  web(request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): Response {
    if (new URL(request.url).pathname !== WEBSOCKET_PATH) return pageResponse(request);
    const headers = securityHeaders(hostOf(request));
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("Expected a WebSocket\n", { status: 426, headers });
    }
    if (!originAllowed(request)) {
      return new Response("Forbidden: another site's page cannot use this chat\n", {
        status: 403,
        headers,
      });
    }
    if (this.#closing) return new Response("Server is shutting down\n", { status: 503, headers });
    const remote = info.remoteAddr;
    const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 0 });
    const refusal = this.#refusal(remote.hostname);
    if (refusal !== undefined) {
      refuseWebSocket(socket, refusal);
      return response;
    }
    const ip = remote.hostname;
    const door = new WebSocketDoor(socket, remote, this.#core, this.#limits, this.#webOptions);
    this.#webDoors.add(door);
    this.#perIp.set(ip, (this.#perIp.get(ip) ?? 0) + 1);
    // A socket that never completes its close still counts, so it cannot pile up unnoticed.
    const task = door.closed.finally(() => {
      this.#webDoors.delete(door);
      const left = this.#perIp.get(ip)! - 1;
      if (left === 0) this.#perIp.delete(ip);
      else this.#perIp.set(ip, left);
      this.#tasks.delete(task);
    });
    this.#tasks.add(task);
    return response;
  }

  /** Tells a refused peer why, in a line both people and clients can read, and closes. */
  #refuse(conn: Deno.Conn, reason: string, irc = false): void {
    const line = new TextEncoder().encode(irc ? `ERROR :${reason}\r\n` : `! ${reason}\r\n`);
    const ip = (conn.remoteAddr as Deno.NetAddr).hostname;
    const waiting = this.#refusing.get(ip) ?? 0;
    if (conn instanceof TlsServerConn && waiting >= MAX_REFUSALS_WAITING) {
      // Enough refusals from there already wait for their handshakes: close this one unexplained.
      try {
        conn.close();
      } catch {
        // Already closed.
      }
      return;
    }
    this.#refusing.set(ip, waiting + 1);
    // Over TLS the line can only go out after the handshake: wait for it, but not for long.
    const written = conn instanceof TlsServerConn
      ? withTimeout(conn.handshake(), REFUSAL_HANDSHAKE_TIMEOUT).then(() => conn.write(line))
      : conn.write(line);
    const task = written.catch(() => 0).finally(
      () => {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
        const left = (this.#refusing.get(ip) ?? 1) - 1;
        if (left <= 0) this.#refusing.delete(ip);
        else this.#refusing.set(ip, left);
        this.#tasks.delete(task);
      },
    ).then(() => {});
    this.#tasks.add(task);
  }

  close(): Promise<void> {
    return this.#closing ??= this.#shutdown();
  }

  async #shutdown(): Promise<void> {
    clearInterval(this.#sweeper);
    for (const listener of this.#listeners) {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
    }
    await this.#accepting.catch(() => {});
    await this.#core.shutdown();
    await this.#core.stopTransfers();
    for (const connection of this.#connections.keys()) connection.close();
    for (const door of this.#webDoors) door.close();
    await Promise.all([...this.#connections.keys()].map((connection) => connection.done));
    await Promise.all([...this.#webDoors].map((door) => door.done));
    await this.#web?.shutdown();
    await Promise.all(this.#tasks);
    await Promise.all(this.#connections.values());
    this.#budget.close();
    await this.#storage.close();
    this.#finished.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Starts a chat server. Clients join with {@linkcode connect}, with
 * `chat connect`, or with plain `nc HOST PORT`.
 *
 * @example Start a server on a free port and stop it
 * ```ts
 * import { serve } from "./server.ts";
 *
 * await using server = await serve({ hostname: "127.0.0.1", port: 0 });
 * console.log(`listening on port ${server.addr.port}`);
 * ```
 *
 * @param options Where to listen, and limits.
 * @returns The running server.
 * @throws {Deno.errors.AddrInUse} When the address is already in use.
 * @throws {Deno.errors.PermissionDenied} When the port needs privileges.
 * @throws {TypeError} When `ircServerName` is not a host name with a dot, or `proxyProtocol`
 *   is asked for with `tls`.
 */
export async function serve(options: ServeOptions = {}): Promise<ChatServer> {
  options.signal?.throwIfAborted();
  // A bad name is refused before anything is opened.
  ircServerName(options.ircServerName, options.hostname);
  if (options.proxyProtocol === true && options.tls !== undefined) {
    throw new TypeError(
      'Options "proxyProtocol" and "tls" cannot go together: let the proxy end TLS',
    );
  }
  const store = await openStorage(options);
  const listeners: Listener[] = [];
  let irc: Listener | undefined;
  try {
    const hostname = options.hostname ?? "0.0.0.0";
    listeners.push(await listen(hostname, options.port ?? 7777, options.tls));
    if (options.tls !== undefined && options.plainPort !== undefined) {
      listeners.push(await listen(hostname, options.plainPort, undefined));
    }
    if (options.ircPort !== undefined) irc = await listen(hostname, options.ircPort, options.tls);
  } catch (error) {
    for (const listener of listeners) listener.close();
    irc?.close();
    await store.close();
    throw error;
  }
  // Requests that come before the server is ready wait for it.
  const ready = Promise.withResolvers<Server>();
  let web: Deno.HttpServer<Deno.NetAddr> | undefined;
  if (options.webPort !== undefined) {
    try {
      web = serveWeb(
        options.hostname ?? "0.0.0.0",
        options.webPort,
        options.tls,
        async (request, info) => (await ready.promise).web(request, info),
      );
    } catch (error) {
      for (const listener of listeners) listener.close();
      irc?.close();
      await store.close();
      throw error;
    }
  }
  let server: Server;
  try {
    const limits = limitsOf(options);
    const core = await ChatCore.open({
      limits,
      software: SOFTWARE,
      store: store.storage,
      historyOnJoin: options.historyOnJoin ?? 50,
      maxHistoryPage: options.maxHistoryPage ?? 200,
      resumeGrace: options.resumeGrace ?? 30_000,
      retention: {
        maxMessages: options.keepMessages ?? 100_000,
        maxAgeDays: options.keepDays ?? 365,
      },
      password: options.password,
      operators: new Set(options.operators ?? []),
      log: options.onLog,
    });
    server = new Server(listeners, irc, web, store, core, limits, options);
    ready.resolve(server);
  } catch (error) {
    for (const listener of listeners) listener.close();
    irc?.close();
    await web?.shutdown();
    await store.close();
    // Reading the bans and applying retention reads the whole database: damage shows here.
    throw storageFailure(store.storage.path, error);
  }
  options.signal?.addEventListener("abort", () => server.close(), { once: true });
  return server;
}

/** The limits in force: the defaults, with those given. */
function limitsOf(options: ServeOptions): Limits {
  const limits = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(DEFAULT_LIMITS) as (keyof Limits)[]) {
    const value = options[key];
    if (value !== undefined) {
      if (!(value > 0)) throw new RangeError(`Invalid ${key} "${value}": it must be above 0`);
      limits[key] = value;
    }
  }
  return limits;
}

/** The storage a server uses, and how to close it. */
interface OpenStorage {
  storage: Storage;
  close(): Promise<void>;
}

async function openStorage(options: ServeOptions): Promise<OpenStorage> {
  const data = options.data ?? ":memory:";
  if (/^postgres(?:ql)?:\/\//i.test(data)) {
    const { PostgresStorage } = await import("./_server/postgres.ts");
    const storage = await PostgresStorage.open(data, {
      password: options.databasePassword,
      node: options.node ?? nodeId(),
      log: options.onLog,
      grace: options.resumeGrace ?? 30_000,
      operators: options.operators,
    });
    return { storage, close: () => storage.close() };
  }
  const store = openStore(data);
  return {
    storage: new SqliteStorage(store),
    close: () => Promise.resolve(store.close()),
  };
}

/** A node id unlikely to be another's: the host, the process and a random part. */
function nodeId(): string {
  let host = "node";
  try {
    host = Deno.hostname();
  } catch {
    // Not allowed to know.
  }
  const random = crypto.getRandomValues(new Uint8Array(4));
  return `${host}-${Deno.pid}-${[...random].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

function openStore(path: string): Store {
  try {
    if (path !== ":memory:") Deno.mkdirSync(dirname(path), { recursive: true });
    return new Store(path);
  } catch (error) {
    throw storageFailure(path, error);
  }
}

/** A failure to open or read the history database, as one line that says what to do. */
function storageFailure(path: string, error: unknown): unknown {
  if (error instanceof StorageError) return error;
  const sqlite = (error as { code?: unknown }).code === "ERR_SQLITE_ERROR";
  if (!sqlite && !(error instanceof Error && error.name in Deno.errors)) return error;
  const message = error instanceof Error ? error.message : String(error);
  let reason = message.replace(/ \(os error \d+\)(: .*)?$/, "");
  if (error instanceof Deno.errors.NotCapable) {
    const denied = /access to "([^"]+)"/.exec(message)?.[1] ?? path;
    reason = `this program is not allowed to use "${denied}"`;
  } else if (
    error instanceof Deno.errors.AlreadyExists || error instanceof Deno.errors.NotADirectory
  ) {
    reason = `"${dirname(path)}" is not a folder`;
  }
  const errcode = (error as { errcode?: unknown }).errcode;
  // SQLITE_CORRUPT, SQLITE_NOTADB (not every failure carries its code).
  const damaged = sqlite &&
    (errcode === 11 || errcode === 26 || /malformed|not a database/.test(message));
  return new StorageError(
    `Cannot open the history database "${path}": ${reason}${
      damaged ? "; restore it from a backup, or move it away to start a new one" : ""
    }`,
    { cause: error },
  );
}

/** Serves the web page and its WebSocket. */
function serveWeb(
  hostname: string,
  port: number,
  tls: ServeOptions["tls"],
  handler: Deno.ServeHandler<Deno.NetAddr>,
): Deno.HttpServer<Deno.NetAddr> {
  try {
    return Deno.serve({
      hostname,
      port,
      ...(tls === undefined ? {} : { cert: tls.cert, key: tls.key }),
      onListen: () => {},
      onError: () => new Response("Internal error\n", { status: 500 }),
    }, handler);
  } catch (error) {
    const where = `"${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}"`;
    if (error instanceof Deno.errors.AddrInUse) {
      throw new Deno.errors.AddrInUse(
        `Cannot serve the web page on ${where}: address already in use`,
      );
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new Deno.errors.PermissionDenied(
        `Cannot serve the web page on ${where}: permission denied`,
      );
    }
    throw error;
  }
}

async function listen(
  hostname: string,
  port: number,
  tls: ServeOptions["tls"],
): Promise<Listener> {
  try {
    if (tls !== undefined) return await listenTls({ hostname, port, cert: tls.cert, key: tls.key });
    return Deno.listen({ hostname, port, transport: "tcp" });
  } catch (error) {
    const where = `"${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}"`;
    if (error instanceof Deno.errors.AddrInUse) {
      throw new Deno.errors.AddrInUse(`Cannot listen on ${where}: address already in use`);
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new Deno.errors.PermissionDenied(`Cannot listen on ${where}: permission denied`);
    }
    if (error instanceof Deno.errors.AddrNotAvailable) {
      throw new Deno.errors.AddrNotAvailable(`Cannot listen on ${where}: address not available`);
    }
    if (tls !== undefined) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new Deno.errors.InvalidData(`Cannot serve TLS on ${where}: ${reason}`, {
        cause: error,
      });
    }
    throw error;
  }
}
