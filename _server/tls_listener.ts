/**
 * A TLS listener whose connections can be closed at any moment, also while
 * their handshake still waits for the peer. (A connection from
 * `Deno.listenTls` that is closed before its handshake keeps its socket open
 * until the peer sends or hangs up, so silent peers could hold descriptors
 * for ever.)
 *
 * @module
 */

import net from "node:net";
import tls from "node:tls";

/** What the server needs of a listener. */
export interface Listener {
  /** The address listened on. */
  readonly addr: Deno.NetAddr;
  /** The next connection; rejects with `BadResource` once closed. */
  accept(): Promise<Deno.Conn>;
  /** Stops listening. */
  close(): void;
}

/**
 * Decrypted bytes held for a connection before its socket stops reading, so
 * that the kernel holds back a peer that sends faster than the server reads,
 * as on plain TCP.
 */
export const HIGH_WATER = 256 * 1024;

/**
 * Decrypted bytes a connection may have waiting, unread, before it is closed:
 * a last resort, should the socket not stop reading.
 */
export const MAX_READ_AHEAD = 16 * 1024 * 1024;

/** Stops or starts reading a socket at its handle (the TLS layer above it cannot be paused). */
function reading(raw: net.Socket, on: boolean): boolean {
  // deno-lint-ignore no-explicit-any
  const handle = (raw as any)._handle as { readStop?: () => void; readStart?: () => void };
  const call = on ? handle?.readStart : handle?.readStop;
  if (typeof call !== "function") return false;
  call.call(handle);
  return true;
}

function netAddr(hostname: string | undefined, port: number | undefined): Deno.NetAddr {
  return { transport: "tcp", hostname: hostname ?? "", port: port ?? 0 };
}

/** One accepted TLS connection, read and written like a `Deno.Conn`. */
export class TlsServerConn implements Deno.Conn {
  readonly localAddr: Deno.NetAddr;
  readonly remoteAddr: Deno.NetAddr;
  readonly #raw: net.Socket;
  readonly #socket: tls.TLSSocket;
  #secure = false;
  #ended = false;
  #closed = false;
  #error: Error | undefined;
  /** Decrypted bytes not read yet. */
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  /** Whether the socket was told to stop reading. */
  #stopped = false;
  #wake: (() => void) | undefined;
  readonly #handshake = Promise.withResolvers<void>();
  readonly #gone = Promise.withResolvers<void>();

  constructor(raw: net.Socket, context: tls.SecureContext) {
    this.#raw = raw;
    this.localAddr = netAddr(raw.localAddress, raw.localPort);
    this.remoteAddr = netAddr(raw.remoteAddress, raw.remotePort);
    this.#socket = new tls.TLSSocket(raw, { isServer: true, secureContext: context });
    this.#handshake.promise.catch(() => {});
    const wake = () => {
      const wake = this.#wake;
      this.#wake = undefined;
      wake?.();
    };
    this.#socket.on("secure", () => {
      this.#secure = true;
      this.#handshake.resolve();
    });
    this.#socket.on("data", (chunk: Uint8Array) => {
      if (chunk.length === 0 || this.#error !== undefined) return;
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      // Enough waiting: stop reading the socket until `read` takes most of it.
      if (this.#buffered >= HIGH_WATER && !this.#stopped) this.#stopped = reading(raw, false);
      if (this.#buffered > MAX_READ_AHEAD) {
        this.#error = new Deno.errors.ConnectionReset(
          `Closed: more than ${MAX_READ_AHEAD} bytes were sent that were not read yet`,
        );
        this.#chunks = [];
        this.#buffered = 0;
        this.close();
      }
      wake();
    });
    this.#socket.on("end", () => {
      this.#ended = true;
      wake();
    });
    this.#socket.on("error", (error: Error) => {
      this.#error ??= error;
      this.#handshake.reject(error);
      wake();
    });
    this.#socket.on("close", () => {
      this.#closed = true;
      this.#handshake.reject(new Deno.errors.ConnectionReset("Closed during the TLS handshake"));
      this.#gone.resolve();
      wake();
    });
  }

  /** Resolves once the TLS handshake is complete; rejects when it fails or the socket closes. */
  handshake(): Promise<void> {
    return this.#handshake.promise;
  }

  /** Resolves once the socket is closed. */
  get closed(): Promise<void> {
    return this.#gone.promise;
  }

  async read(p: Uint8Array): Promise<number | null> {
    while (true) {
      const chunk = this.#chunks[0];
      if (chunk !== undefined) {
        const length = Math.min(chunk.length, p.length);
        p.set(chunk.subarray(0, length));
        if (length < chunk.length) this.#chunks[0] = chunk.subarray(length);
        else this.#chunks.shift();
        this.#buffered -= length;
        if (this.#stopped && this.#buffered < HIGH_WATER / 2 && !this.#closed) {
          this.#stopped = !reading(this.#raw, true);
        }
        return length;
      }
      if (this.#error !== undefined) throw this.#error;
      if (this.#ended || this.#closed) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  write(p: Uint8Array): Promise<number> {
    if (this.#closed || this.#socket.destroyed) {
      return Promise.reject(new Deno.errors.BadResource("The connection is closed"));
    }
    if (!this.#secure) {
      // Held until the handshake is done, and dropped if it never is: nothing to wait for.
      this.#socket.write(p);
      return Promise.resolve(p.length);
    }
    return new Promise((resolve, reject) => {
      this.#socket.write(p, (error?: Error | null) => {
        if (error) reject(error);
        else resolve(p.length);
      });
    });
  }

  /** Closes the socket at once, whatever state the handshake is in. */
  close(): void {
    this.#socket.destroy();
    this.#raw.destroy();
  }

  closeWrite(): Promise<void> {
    return new Promise((resolve) => this.#socket.end(resolve));
  }

  /** Turns Nagle's algorithm off (or on). */
  setNoDelay(noDelay = true): void {
    this.#raw.setNoDelay(noDelay);
  }

  /** Turns TCP keepalive on (or off). */
  setKeepAlive(keepAlive = true): void {
    this.#raw.setKeepAlive(keepAlive);
  }

  ref(): void {
    this.#raw.ref();
  }

  unref(): void {
    this.#raw.unref();
  }

  get readable(): ReadableStream<Uint8Array<ArrayBuffer>> {
    return new ReadableStream({
      type: "bytes",
      pull: async (controller) => {
        const buffer = new Uint8Array(16 * 1024);
        const read = await this.read(buffer);
        if (read === null) {
          controller.close();
          this.close();
        } else controller.enqueue(buffer.subarray(0, read));
      },
      cancel: () => this.close(),
    });
  }

  get writable(): WritableStream<Uint8Array> {
    return new WritableStream({
      write: async (chunk) => {
        let offset = 0;
        while (offset < chunk.length) offset += await this.write(chunk.subarray(offset));
      },
      close: () => this.close(),
      abort: () => this.close(),
    });
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** A TCP listener that speaks TLS on every connection it accepts. */
class TlsListener implements Listener {
  readonly addr: Deno.NetAddr;
  readonly #server: net.Server;
  readonly #context: tls.SecureContext;
  #waiting: TlsServerConn[] = [];
  #accepts: PromiseWithResolvers<Deno.Conn>[] = [];
  #closed = false;

  constructor(server: net.Server, context: tls.SecureContext) {
    this.#server = server;
    this.#context = context;
    const address = server.address() as net.AddressInfo;
    this.addr = netAddr(address.address, address.port);
    server.on("connection", (raw: net.Socket) => this.#connected(raw));
  }

  #connected(raw: net.Socket): void {
    if (this.#closed) {
      raw.destroy();
      return;
    }
    const conn = new TlsServerConn(raw, this.#context);
    const accept = this.#accepts.shift();
    if (accept !== undefined) accept.resolve(conn);
    else this.#waiting.push(conn);
  }

  accept(): Promise<Deno.Conn> {
    const conn = this.#waiting.shift();
    if (conn !== undefined) return Promise.resolve(conn);
    if (this.#closed) {
      return Promise.reject(new Deno.errors.BadResource("Listener has been closed"));
    }
    const accept = Promise.withResolvers<Deno.Conn>();
    this.#accepts.push(accept);
    return accept.promise;
  }

  close(): void {
    if (this.#closed) throw new Deno.errors.BadResource("Listener has been closed");
    this.#closed = true;
    this.#server.close();
    for (const conn of this.#waiting) conn.close();
    this.#waiting = [];
    for (const accept of this.#accepts) {
      accept.reject(new Deno.errors.BadResource("Listener has been closed"));
    }
    this.#accepts = [];
  }
}

/**
 * Listens for TLS connections. Each accepted connection starts its handshake
 * at once; closing it closes its socket, also before the handshake is done.
 *
 * @param options Where to listen, and the certificate and key (PEM).
 * @returns The listener, once it listens.
 * @throws {Deno.errors.AddrInUse} When the address is in use.
 * @throws {Deno.errors.PermissionDenied} When the port needs privileges.
 * @throws {Deno.errors.AddrNotAvailable} When the address is not local.
 * @throws {Deno.errors.InvalidData} When the certificate or key cannot be used.
 */
export async function listenTls(
  options: { hostname: string; port: number; cert: string; key: string },
): Promise<Listener> {
  let context: tls.SecureContext;
  try {
    context = tls.createSecureContext({ cert: options.cert, key: options.key });
  } catch (error) {
    throw new Deno.errors.InvalidData(error instanceof Error ? error.message : String(error), {
      cause: error,
    });
  }
  const server = net.createServer({ noDelay: true });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error: Error & { code?: string }) => {
      const Class = error.code === "EADDRINUSE"
        ? Deno.errors.AddrInUse
        : error.code === "EACCES"
        ? Deno.errors.PermissionDenied
        : error.code === "EADDRNOTAVAIL"
        ? Deno.errors.AddrNotAvailable
        : undefined;
      reject(Class === undefined ? error : new Class(error.message, { cause: error }));
    });
    server.listen({ host: options.hostname, port: options.port }, () => resolve());
  });
  server.on("error", () => {
    // Errors after listening belong to single connections, which report them themselves.
  });
  return new TlsListener(server, context);
}
