/**
 * The chat server: {@linkcode serve} listens on TCP and relays messages
 * between everyone connected, whether they use the `chat` client, this
 * library, or plain `nc`.
 *
 * @module
 */

import denoConfig from "./deno.json" with { type: "json" };
import { DEFAULT_LIMITS, type Limits } from "./protocol/limits.ts";
import { Connection } from "./_connection.ts";
import { Hub } from "./_hub.ts";

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
  /** Receives a line for each join, leave and rename, for an operator's log. */
  onLog?: (line: string) => void;
}

/** A running server. */
export interface ChatServer extends AsyncDisposable {
  /** The address the server listens on, with the real port when `0` was asked for. */
  readonly addr: Deno.NetAddr;
  /** How many people are connected and named. */
  readonly users: number;
  /**
   * Stops accepting, tells every client the server is going away, sends what
   * is queued (waiting at most two seconds for clients that do not read), and
   * closes every connection. Calling it again returns the same promise.
   */
  close(): Promise<void>;
  /** Resolves once the server has closed, however that happened. */
  readonly finished: Promise<void>;
}

/** Server software name and version, as sent in `welcome`. */
export const SOFTWARE = `chat/${denoConfig.version}`;

class Server implements ChatServer {
  readonly addr: Deno.NetAddr;
  #listener: Deno.Listener;
  #hub: Hub;
  #limits: Limits;
  #connections = new Set<Connection>();
  #tasks = new Set<Promise<void>>();
  #closing: Promise<void> | undefined;
  #accepting: Promise<void>;
  #finished = Promise.withResolvers<void>();

  constructor(listener: Deno.Listener, options: ServeOptions) {
    this.#listener = listener;
    this.addr = listener.addr as Deno.NetAddr;
    this.#limits = {
      maxFrameBytes: options.maxFrameBytes ?? DEFAULT_LIMITS.maxFrameBytes,
      maxTextLength: options.maxTextLength ?? DEFAULT_LIMITS.maxTextLength,
      maxSendQueueBytes: options.maxSendQueueBytes ?? DEFAULT_LIMITS.maxSendQueueBytes,
    };
    this.#hub = new Hub({ limits: this.#limits, software: SOFTWARE, log: options.onLog });
    this.#accepting = this.#accept();
  }

  get users(): number {
    return this.#hub.size;
  }

  get finished(): Promise<void> {
    return this.#finished.promise;
  }

  async #accept(): Promise<void> {
    const greeting = `Welcome to chat ${denoConfig.version}.`;
    try {
      for await (const conn of this.#listener) {
        if (this.#closing) {
          conn.close();
          continue;
        }
        try {
          (conn as Deno.TcpConn).setNoDelay(true);
        } catch {
          // Not a TCP socket; nothing to tune.
        }
        const connection = new Connection(conn, this.#hub, this.#limits, greeting);
        this.#connections.add(connection);
        const task = connection.run().finally(() => {
          this.#connections.delete(connection);
          this.#tasks.delete(task);
        });
        this.#tasks.add(task);
      }
    } catch (error) {
      if (!this.#closing) throw error;
    }
  }

  close(): Promise<void> {
    return this.#closing ??= this.#shutdown();
  }

  async #shutdown(): Promise<void> {
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    await this.#accepting.catch(() => {});
    this.#hub.shutdown();
    for (const connection of this.#connections) connection.close();
    await Promise.all([...this.#connections].map((connection) => connection.done));
    await Promise.all(this.#tasks);
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
 */
export function serve(options: ServeOptions = {}): Promise<ChatServer> {
  try {
    options.signal?.throwIfAborted();
    const server = new Server(listen(options), options);
    options.signal?.addEventListener("abort", () => server.close(), { once: true });
    return Promise.resolve(server);
  } catch (error) {
    return Promise.reject(error);
  }
}

function listen(options: ServeOptions): Deno.Listener {
  const hostname = options.hostname ?? "0.0.0.0";
  const port = options.port ?? 7777;
  try {
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
    throw error;
  }
}
