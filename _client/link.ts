/**
 * One connection to a server: dialing (plain TCP, TLS, or TLS pinned to a
 * certificate fingerprint), the read loop that splits the stream into lines,
 * and the write side. A reconnecting client has a new link after each break.
 * Data connections for file transfers are dialed here too.
 *
 * @module
 */

import { ConnectionError, ProtocolError } from "../protocol/errors.ts";
import type { ClientFrame, DataFrame, WelcomeFrame } from "../protocol/frames.ts";
import { LineDecoder } from "../protocol/line_decoder.ts";
import { SendQueue } from "../_common/send_queue.ts";
import type { TlsOptions } from "./types.ts";
import { writeAll } from "../_common/write_all.ts";
import { readShortFingerprint, shortFingerprint } from "../protocol/fingerprint.ts";

const encoder = new TextEncoder();
const MAX_SERVER_FRAME_BYTES = 16 * 1024 * 1024;
const READ_BUFFER_BYTES = 64 * 1024;

/** The address as dialed, `host:port` (an IPv6 host in brackets): what a key proof names. */
export function serverAddress(hostname: string, port: number): string {
  return `${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
}

/** The address quoted, for messages. */
export function describeAddress(hostname: string, port: number): string {
  return `"${serverAddress(hostname, port)}"`;
}

/** Where a client connects, and how. */
export interface Endpoint {
  hostname: string;
  port: number;
  tls: boolean | TlsOptions | undefined;
}

/** A new connection, and the fingerprint of the TLS certificate it was made with, if known. */
export interface Dialed {
  conn: Deno.Conn;
  fingerprint?: string;
}

/** What a TLS handshake reports when the other side answers in plain text. */
const NOT_TLS = /InvalidContentType|wrong version number|corrupt message/i;

/**
 * Opens a connection. `signal` gives up (the caller's signal and `timeout`
 * together); `timeout` alone tells a timeout from an abort in the message.
 */
export async function dial(
  { hostname, port, tls }: Endpoint,
  signal: AbortSignal,
  timeout: AbortSignal,
): Promise<Dialed> {
  const where = describeAddress(hostname, port);
  let caCerts = typeof tls === "object" ? tls.caCerts : undefined;
  let pinned = false;
  let fingerprint: string | undefined;
  if (typeof tls === "object" && tls.fingerprint !== undefined) {
    // Loaded only when needed: it brings in the X.509 library.
    const { certificateFingerprint, fetchPeerCertificate, normalizeFingerprint } = await import(
      "../_common/tls.ts"
    );
    // The full form, or the short one the join hint shows (the first 15 bytes, base32).
    const wanted = normalizeFingerprint(tls.fingerprint) ?? readShortFingerprint(tls.fingerprint);
    if (wanted === undefined) {
      throw new TypeError(
        `Invalid fingerprint "${tls.fingerprint}": expected SHA256: and 32 bytes of hex, or the short form XXXX-XXXX-XXXX-XXXX-XXXX-XXXX`,
      );
    }
    // Fetch the certificate unverified, compare, then connect verifying against exactly it.
    let pem: string;
    try {
      pem = await fetchPeerCertificate(hostname, port, { signal });
    } catch (error) {
      if (signal.aborted && !timeout.aborted) throw signal.reason;
      const message = timeout.aborted
        ? `Cannot connect to ${where} over TLS: timed out`
        : error instanceof Error
        ? error.message
        : String(error);
      throw new ConnectionError("unreachable", message, { cause: error });
    }
    const actual = await certificateFingerprint(pem);
    const short = shortFingerprint(actual);
    if (actual !== wanted && short !== wanted) {
      throw new ConnectionError(
        "certificate_changed",
        `Refusing ${where}: its certificate's fingerprint is ${
          wanted.startsWith("SHA256:") ? actual : short
        }, not the ${wanted} you asked to trust`,
      );
    }
    caCerts = [pem];
    pinned = true;
    // The full form: the key proof names it.
    fingerprint = actual;
  }
  let opened: Deno.Conn | undefined;
  try {
    if (pinned) {
      // Trust rests on the pinned certificate alone, whatever address it was made for:
      // verify it under the name every self-signed chat certificate carries.
      const tcp = await Deno.connect({ hostname, port, transport: "tcp", signal });
      opened = tcp;
      const conn = opened = await Deno.startTls(tcp, { hostname: "localhost", caCerts });
      await conn.handshake();
      return { conn, fingerprint };
    }
    if (tls) {
      const conn = opened = await Deno.connectTls(
        { hostname, port, caCerts, signal } as Deno.ConnectTlsOptions,
      );
      await conn.handshake();
      return { conn, fingerprint };
    }
    return { conn: await Deno.connect({ hostname, port, transport: "tcp", signal }) };
  } catch (error) {
    try {
      opened?.close();
    } catch {
      // Already closed.
    }
    if (signal.aborted && !timeout.aborted) throw signal.reason;
    const message = error instanceof Error ? error.message : String(error);
    if (
      tls && /certificate|UnknownIssuer|NotValidForName|CertExpired|BadSignature/i.test(message)
    ) {
      throw new ConnectionError(
        "unreachable",
        `Cannot verify the TLS certificate of ${where} (${message.replace(/^.*: /, "")}): ` +
          `trust it with --ca CERT.pem, or with --fingerprint SHA256:… as printed by "chat serve --tls"`,
        { cause: error },
      );
    }
    if (tls && !timeout.aborted && NOT_TLS.test(message)) {
      throw new ConnectionError(
        "unreachable",
        `Cannot connect to ${where} over TLS: this port does not speak TLS`,
        { cause: error },
      );
    }
    const reason = timeout.aborted
      ? "timed out"
      : error instanceof Deno.errors.ConnectionRefused
      ? "connection refused"
      : error instanceof Error
      ? error.message.replace(/ \(os error \d+\)$/, "").toLowerCase()
      : String(error);
    throw new ConnectionError(
      "unreachable",
      `Cannot connect to ${where}: ${reason}`,
      {
        cause: error,
      },
    );
  }
}

/**
 * Opens a data connection for a transfer and returns it with the bytes read
 * past the go-ahead.
 */
export async function openData(
  endpoint: Endpoint,
  token: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<{ conn: Deno.Conn; rest: Uint8Array }> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const { conn } = await dial(
    endpoint,
    signal ? AbortSignal.any([signal, timeout]) : timeout,
    timeout,
  );
  try {
    const data: DataFrame = { type: "data", token };
    await writeAll(conn, encoder.encode(JSON.stringify(data) + "\n"));
    const buffer = new Uint8Array(64 * 1024);
    let seen = 0;
    while (true) {
      const read = await conn.read(buffer.subarray(seen));
      if (read === null) {
        throw new ProtocolError("transfer_failed", "The server closed the data connection");
      }
      seen += read;
      const end = buffer.subarray(0, seen).indexOf(0x0a);
      if (end === -1) {
        if (seen === buffer.length) {
          throw new ProtocolError("transfer_failed", "The server's answer is too long");
        }
        continue;
      }
      let answer: unknown;
      try {
        answer = JSON.parse(new TextDecoder().decode(buffer.subarray(0, end)));
      } catch {
        answer = undefined;
      }
      const fields = typeof answer === "object" && answer !== null
        ? answer as Record<string, unknown>
        : {};
      if (fields.type !== "data" || fields.ok !== true) {
        const why = typeof fields.message === "string" ? fields.message : "no reason";
        throw new ProtocolError("transfer_failed", `The server refused the transfer: ${why}`);
      }
      return { conn, rest: buffer.slice(end + 1, seen) };
    }
  } catch (error) {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
    throw error;
  }
}

/** What a link tells its client while it reads. */
export interface LinkReader {
  /** Whether a TLS record would be a sign of a TLS port (before any welcome). */
  expectsPlainText(): boolean;
  /** One line from the server. A throw ends the link, its message the reason. */
  onLine(link: Link, text: string): void;
  /** The link ended. */
  onEnd(link: Link, reason: string): void;
}

/** One TCP connection of a client; a reconnecting client has a new one after each break. */
export class Link {
  readonly conn: Deno.Conn;
  /** The fingerprint of the server's TLS certificate, when known. */
  readonly fingerprint: string | undefined;
  readonly queue: SendQueue;
  readonly welcome: PromiseWithResolvers<WelcomeFrame> = Promise.withResolvers();
  reading: Promise<void> = Promise.resolve();
  /** When something last arrived (`performance.now()`). */
  lastInput = performance.now();
  /** When `welcome` arrived (`performance.now()`), or `undefined` before. */
  welcomedAt: number | undefined;
  /** The last plain-text line the server sent before `welcome`: why it refused us, if it did. */
  notice = "";
  /**
   * The `hello` this client sent, until the server answers it: the only time a
   * challenge is answered, and only once.
   */
  handshake: { id: number; name: string; server: string } | undefined;

  constructor({ conn, fingerprint }: Dialed) {
    this.conn = conn;
    this.fingerprint = fingerprint;
    this.queue = new SendQueue(conn, { maxBytes: Number.MAX_SAFE_INTEGER });
    this.welcome.promise.catch(() => {});
  }

  /** Whether the connection is closed. */
  get closed(): boolean {
    return this.queue.closed;
  }

  /** Queues one frame. */
  write(frame: ClientFrame): void {
    this.queue.push(encoder.encode(JSON.stringify(frame) + "\n"));
  }

  /** Closes the connection (the read loop then ends). */
  destroy(): void {
    this.queue.destroy();
  }

  /** Starts the read loop; `reading` settles when it ends. */
  start(reader: LinkReader): void {
    this.reading = this.#read(reader);
  }

  async #read(reader: LinkReader): Promise<void> {
    const decoder = new LineDecoder({ maxBytes: MAX_SERVER_FRAME_BYTES });
    const buffer = new Uint8Array(READ_BUFFER_BYTES);
    let reason = "the server closed the connection";
    try {
      while (true) {
        const read = await this.conn.read(buffer);
        if (read === null) break;
        // A TLS record (alert or handshake) where a line was expected: the port speaks TLS.
        if (
          reader.expectsPlainText() && (buffer[0] === 0x15 || buffer[0] === 0x16) &&
          buffer[1] === 0x03
        ) {
          this.notice =
            "this port speaks TLS: join with --fingerprint SHA256:… (as chat serve printed it) " +
            "or --ca FILE";
          break;
        }
        this.lastInput = performance.now();
        for (const line of decoder.push(buffer.subarray(0, read))) {
          // A frame we cannot read may have been an answer: the stream can no
          // longer be trusted, so end the connection rather than hang.
          if (!line.ok) throw new ProtocolError(line.code, line.message);
          reader.onLine(this, line.text);
        }
      }
    } catch (error) {
      reason = error instanceof Error ? error.message : String(error);
    } finally {
      this.queue.destroy();
      this.welcome.reject(
        new ConnectionError(
          "closed",
          this.notice
            ? `The server refused the connection: ${this.notice}`
            : "Connection closed before the server answered",
        ),
      );
      reader.onEnd(this, reason);
    }
  }
}
