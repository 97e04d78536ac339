/**
 * A server that speaks the chat protocol just well enough to be joined, then
 * misbehaves on cue: the test decides, connection by connection, what it
 * sends. For checking that clients treat everything a server says as hostile.
 *
 * @module
 */

import { LineDecoder } from "../protocol/line_decoder.ts";

const encoder = new TextEncoder();

/** One accepted connection: read lines and frames, write anything. */
export class HostileConn {
  readonly conn: Deno.Conn;
  #decoder = new LineDecoder({ maxBytes: 1 << 20, fatal: false });
  #lines: string[] = [];
  #buffer = new Uint8Array(16 * 1024);
  #eof = false;
  #closed = false;

  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  /** Writes a frame (an object) or raw text, whole; a closed peer is ignored. */
  async send(frame: unknown): Promise<void> {
    const bytes = typeof frame === "string"
      ? encoder.encode(frame)
      : frame instanceof Uint8Array
      ? frame
      : encoder.encode(JSON.stringify(frame) + "\n");
    let offset = 0;
    try {
      while (offset < bytes.length) offset += await this.conn.write(bytes.subarray(offset));
    } catch {
      // The client went away.
    }
  }

  /** The next line, or `null` at the end. */
  async line(): Promise<string | null> {
    while (this.#lines.length === 0) {
      if (this.#eof) return null;
      let read: number | null;
      try {
        read = await this.conn.read(this.#buffer);
      } catch {
        read = null;
      }
      if (read === null) {
        this.#eof = true;
        continue;
      }
      for (const line of this.#decoder.push(this.#buffer.subarray(0, read))) {
        if (line.ok) this.#lines.push(line.text);
      }
    }
    return this.#lines.shift()!;
  }

  /** The next frame, or `null` at the end. */
  async frame(): Promise<Record<string, unknown> | null> {
    const line = await this.line();
    return line === null ? null : JSON.parse(line);
  }

  /** Reads frames until one of this type; throws at the end. */
  async expect(type: string): Promise<Record<string, unknown>> {
    while (true) {
      const frame = await this.frame();
      if (frame === null) throw new Error(`Connection closed before a "${type}" frame`);
      if (frame.type === type) return frame;
    }
  }

  /** Closes, once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** A welcome for a `hello`, with fields to override. */
export function welcomeFor(
  hello: Record<string, unknown>,
  fields: Record<string, unknown> = {},
): Record<string, unknown> {
  const name = String(hello.name);
  return {
    type: "welcome",
    id: hello.id,
    v: 1,
    server: "hostile/1",
    name,
    room: "#lobby",
    members: [name],
    rooms: [{ name: "#lobby", seq: 0, topic: "", members: [name] }],
    session: "s3ss10n",
    resumed: false,
    resumeGrace: 30_000,
    limits: { maxFrameBytes: 65536, maxTextLength: 4000, idleTimeout: 60_000 },
    ...fields,
  };
}

/** A listener on 127.0.0.1 that hands each connection to the test. */
export class HostileServer implements AsyncDisposable {
  readonly listener: Deno.Listener;
  readonly port: number;
  #waiting: PromiseWithResolvers<HostileConn>[] = [];
  #closed = false;
  #queued: HostileConn[] = [];
  #open = new Set<HostileConn>();
  #accepting: Promise<void>;

  constructor(listener?: Deno.Listener) {
    this.listener = listener ?? Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.listener.addr as Deno.NetAddr).port;
    this.#accepting = this.#accept();
  }

  async #accept(): Promise<void> {
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await this.listener.accept();
      } catch {
        this.#closed = true;
        for (const waiter of this.#waiting.splice(0)) {
          waiter.reject(new Error("The server is closed"));
        }
        return;
      }
      const peer = new HostileConn(conn);
      this.#open.add(peer);
      const waiter = this.#waiting.shift();
      if (waiter) waiter.resolve(peer);
      else this.#queued.push(peer);
    }
  }

  /** The next connection; rejects once the server is closed. */
  next(): Promise<HostileConn> {
    const queued = this.#queued.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#closed) return Promise.reject(new Error("The server is closed"));
    const waiter = Promise.withResolvers<HostileConn>();
    this.#waiting.push(waiter);
    return waiter.promise;
  }

  /**
   * The next connection that says `hello`, welcomed: returns it with its
   * `hello`. Connections that close first (a certificate fetch) are skipped.
   */
  async joined(
    fields: Record<string, unknown> = {},
  ): Promise<{ peer: HostileConn; hello: Record<string, unknown> }> {
    while (true) {
      const peer = await this.next();
      const hello = await peer.frame().catch(() => null);
      if (hello === null || hello.type !== "hello") {
        peer.close();
        continue;
      }
      await peer.send(welcomeFor(hello, fields));
      return { peer, hello };
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.listener.close();
    } catch {
      // Already closed.
    }
    await this.#accepting;
    for (const peer of [...this.#open, ...this.#queued]) peer.close();
  }
}
