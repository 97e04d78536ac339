/**
 * WebSocket peers for tests: one over Deno's WebSocket that collects frames,
 * and a raw one that does the upgrade by hand (to send any Origin, or to stop
 * reading).
 *
 * @module
 */

import { withTimeout } from "./_cli.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A WebSocket that keeps every frame it receives and waits for the ones a test expects. */
export class WsPeer implements AsyncDisposable {
  readonly socket: WebSocket;
  /** Every text frame received, parsed. */
  readonly frames: Record<string, unknown>[] = [];
  /** Binary messages received. */
  readonly binary: Uint8Array[] = [];
  #wake: (() => void) | undefined;
  #closed = Promise.withResolvers<CloseEvent>();
  closeEvent: CloseEvent | undefined;

  private constructor(socket: WebSocket) {
    this.socket = socket;
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) => {
      if (typeof event.data === "string") {
        // A message carries one frame or more, a line each.
        for (const line of event.data.split("\n")) this.frames.push(JSON.parse(line));
      } else this.binary.push(new Uint8Array(event.data));
      this.#wake?.();
    };
    socket.onclose = (event) => {
      this.closeEvent = event;
      this.#closed.resolve(event);
      this.#wake?.();
    };
    socket.onerror = () => {};
  }

  /** Opens a WebSocket to the web port. */
  static async open(port: number): Promise<WsPeer> {
    const peer = new WsPeer(new WebSocket(`ws://127.0.0.1:${port}/ws`));
    await withTimeout(
      new Promise((resolve, reject) => {
        peer.socket.onopen = resolve;
        peer.socket.onerror = reject;
      }),
      10_000,
      "the WebSocket to open",
    );
    return peer;
  }

  /** Opens a WebSocket and says hello. */
  static async join(port: number, name: string): Promise<WsPeer> {
    const peer = await WsPeer.open(port);
    peer.send({ type: "hello", id: 1, v: 1, name, reconnect: true });
    await peer.until((frame) => frame.type === "welcome");
    return peer;
  }

  /** Sends a frame as a text message. */
  send(frame: unknown): void {
    this.socket.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** Waits for a frame that passes `test` (searching from the first), or the close. */
  async until(
    test: (frame: Record<string, unknown>) => boolean,
    timeout = 10_000,
  ): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeout;
    let from = 0;
    while (true) {
      for (; from < this.frames.length; from++) {
        if (test(this.frames[from]!)) return this.frames[from]!;
      }
      if (this.closeEvent !== undefined) throw new Error("The WebSocket closed first");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`No such frame within ${timeout} ms`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  /** Resolves when the socket is closed. */
  closed(timeout = 15_000): Promise<CloseEvent> {
    return withTimeout(this.#closed.promise, timeout, "the WebSocket to close");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.socket.readyState !== WebSocket.CLOSED) {
      this.socket.close();
      await this.closed();
    }
  }
}

/** The answer to a WebSocket upgrade done by hand, and the connection. */
export interface RawUpgrade {
  status: number;
  conn: Deno.Conn;
}

/**
 * Asks for a WebSocket by hand, with the headers given.
 *
 * @param port The web port.
 * @param headers Extra headers (an `Origin`, say).
 * @param conn A connection already made (over TLS, say).
 * @returns The status and the open connection.
 */
export async function rawUpgrade(
  port: number,
  headers: Record<string, string> = {},
  conn?: Deno.Conn,
): Promise<RawUpgrade> {
  conn ??= await Deno.connect({ hostname: "127.0.0.1", port });
  const lines = [
    "GET /ws HTTP/1.1",
    `Host: 127.0.0.1:${port}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
    ...Object.entries(headers).map(([key, value]) => `${key}: ${value}`),
    "",
    "",
  ];
  await writeAll(conn, encoder.encode(lines.join("\r\n")));
  // Read the head only, byte by byte, so nothing after it is consumed.
  let head = "";
  const byte = new Uint8Array(1);
  while (!head.endsWith("\r\n\r\n")) {
    const read = await conn.read(byte);
    if (read === null) break;
    head += decoder.decode(byte);
  }
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
  return { status, conn };
}

/** A masked client text frame. */
export function textFrame(text: string): Uint8Array {
  const payload = encoder.encode(text);
  const length = payload.length;
  const head = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const frame = new Uint8Array(head + 4 + length);
  frame[0] = 0x81;
  if (length < 126) frame[1] = 0x80 | length;
  else if (length < 65536) {
    frame[1] = 0x80 | 126;
    new DataView(frame.buffer).setUint16(2, length);
  } else {
    frame[1] = 0x80 | 127;
    new DataView(frame.buffer).setBigUint64(2, BigInt(length));
  }
  const mask = crypto.getRandomValues(new Uint8Array(4));
  frame.set(mask, head);
  for (let i = 0; i < length; i++) frame[head + 4 + i] = payload[i]! ^ mask[i % 4]!;
  return frame;
}

/** Writes every byte. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}
