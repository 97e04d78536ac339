/**
 * A raw TCP peer for tests: writes bytes and reads lines, the way `nc` or a
 * hostile client would.
 *
 * @module
 */

import { LineDecoder } from "../protocol/line_decoder.ts";

const encoder = new TextEncoder();

/** A TCP connection that reads whole lines. */
export class RawPeer implements AsyncDisposable {
  readonly conn: Deno.Conn;
  #decoder = new LineDecoder({ maxBytes: 1 << 20, fatal: false });
  #lines: string[] = [];
  #buffer = new Uint8Array(16 * 1024);
  #eof = false;

  private constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  /** Wraps a connection already made (a TLS one, say). */
  static over(conn: Deno.Conn): RawPeer {
    return new RawPeer(conn);
  }

  /** Connects to a port on 127.0.0.1. */
  static async connect(port: number): Promise<RawPeer> {
    return new RawPeer(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Writes text or bytes, whole. */
  async write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    let offset = 0;
    while (offset < bytes.length) offset += await this.conn.write(bytes.subarray(offset));
  }

  /** Sends a JSON frame. */
  send(frame: unknown): Promise<void> {
    return this.write(JSON.stringify(frame) + "\n");
  }

  /** Reads the next line, or `null` at EOF. */
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

  /** Reads lines until one matches, returning it; throws at EOF. */
  async until(pattern: RegExp): Promise<string> {
    while (true) {
      const line = await this.line();
      if (line === null) throw new Error(`Connection closed before a line matching ${pattern}`);
      if (pattern.test(line)) return line;
    }
  }

  /** Reads the next JSON frame whose type is given. */
  async frame(type: string): Promise<Record<string, unknown>> {
    while (true) {
      const line = await this.line();
      if (line === null) throw new Error(`Connection closed before a "${type}" frame`);
      const frame = JSON.parse(line);
      if (frame.type === type) return frame;
    }
  }

  /** Resolves once the server closes the connection. */
  async eof(): Promise<void> {
    while ((await this.line()) !== null) {
      // Skip what is left.
    }
  }

  /** Closes the socket (once). */
  close(): void {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}
