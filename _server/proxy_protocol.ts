/**
 * The PROXY protocol (versions 1 and 2) that HAProxy and other TCP proxies
 * put before a connection's bytes (`send-proxy`, `send-proxy-v2`) to say
 * whom it comes from. With `--proxy-protocol` every connection to the chat
 * and IRC ports must start with such a header; the address in it is then the
 * client's, for per-address limits, `ip:` bans and the log.
 *
 * @module
 */

import { type AddressRange, format, parseAddress } from "./address.ts";

/** The first bytes of a version 2 header. */
const V2_SIGNATURE = new Uint8Array([
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
]);
const V1_PREFIX = new TextEncoder().encode("PROXY ");
/** The longest version 1 header, its CRLF included. */
const V1_MAX = 107;
/** The most bytes of addresses and extensions a version 2 header may carry here. */
const V2_MAX_BODY = 4096;
/** Most bytes a header takes, of either version. */
export const MAX_PROXY_HEADER = 16 + V2_MAX_BODY;

/** A parsed header. */
export interface ProxyHeader {
  /** How many bytes it took. */
  length: number;
  /**
   * The client's address and port; `undefined` for a connection the proxy
   * made itself (a health check: `LOCAL`, `UNKNOWN`) or of another family.
   */
  source?: { hostname: string; port: number };
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean | undefined {
  const n = Math.min(bytes.length, prefix.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== prefix[i]) return false;
  return bytes.length >= prefix.length ? true : undefined;
}

function port(text: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw new SyntaxError(`PROXY header has an invalid port "${text}"`);
  }
  return Number(text);
}

function parseV1(bytes: Uint8Array): ProxyHeader | undefined {
  const end = bytes.subarray(0, V1_MAX).findIndex((byte, i) =>
    byte === 0x0d && bytes[i + 1] === 0x0a
  );
  if (end === -1) {
    if (bytes.length >= V1_MAX) throw new SyntaxError("PROXY header is longer than 107 bytes");
    return undefined;
  }
  const line = new TextDecoder().decode(bytes.subarray(0, end));
  const parts = line.split(" ");
  const length = end + 2;
  if (parts[1] === "UNKNOWN") return { length };
  if (parts.length !== 6 || (parts[1] !== "TCP4" && parts[1] !== "TCP6")) {
    throw new SyntaxError(`PROXY header "${line.slice(0, 60)}" is not understood`);
  }
  const family = parts[1] === "TCP4" ? 4 : 6;
  const address = parseAddress(parts[2]!);
  if (address === undefined || (family === 4 && parts[2]!.includes(":"))) {
    throw new SyntaxError(`PROXY header has an invalid address "${parts[2]}"`);
  }
  port(parts[5]!);
  return { length, source: { hostname: format(address), port: port(parts[4]!) } };
}

function bits(bytes: Uint8Array): bigint {
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return value;
}

function parseV2(bytes: Uint8Array): ProxyHeader | undefined {
  if (bytes.length < 16) return undefined;
  const version = bytes[12]! >> 4;
  const command = bytes[12]! & 0x0f;
  if (version !== 2 || command > 1) {
    throw new SyntaxError(`PROXY header has an unknown version or command (${bytes[12]})`);
  }
  const body = (bytes[14]! << 8) | bytes[15]!;
  if (body > V2_MAX_BODY) {
    throw new SyntaxError(`PROXY header is longer than ${16 + V2_MAX_BODY} bytes`);
  }
  const length = 16 + body;
  if (bytes.length < length) return undefined;
  // A connection of the proxy's own (a health check) says LOCAL: it keeps its own address.
  if (command === 0) return { length };
  const family = bytes[13]!;
  let range: AddressRange;
  let at: number;
  if (family === 0x11 && body >= 12) {
    range = { family: 4, bits: bits(bytes.subarray(16, 20)), prefix: 32 };
    at = 24;
  } else if (family === 0x21 && body >= 36) {
    range = { family: 6, bits: bits(bytes.subarray(16, 32)), prefix: 128 };
    at = 48;
  } else {
    // UNSPEC, UDP or a Unix socket: no address of use here.
    return { length };
  }
  // An IPv4-mapped IPv6 address counts as the IPv4 address, as everywhere else.
  const address = parseAddress(format(range))!;
  return {
    length,
    source: { hostname: format(address), port: (bytes[at]! << 8) | bytes[at + 1]! },
  };
}

/**
 * Parses the PROXY header at the start of a connection's bytes.
 *
 * @param bytes The bytes read so far.
 * @returns The header, or `undefined` when more bytes are needed.
 * @throws {SyntaxError} When the bytes are not a PROXY header.
 */
export function parseProxyHeader(bytes: Uint8Array): ProxyHeader | undefined {
  const v2 = startsWith(bytes, V2_SIGNATURE);
  if (v2 === true) return parseV2(bytes);
  const v1 = startsWith(bytes, V1_PREFIX);
  if (v1 === true) return parseV1(bytes);
  if (v1 === undefined || v2 === undefined) return undefined;
  throw new SyntaxError("The connection does not start with a PROXY header");
}

/**
 * A connection whose PROXY header was read: it reports the client's address
 * and hands out the bytes read past the header first.
 */
export class ProxiedConn implements Deno.Conn {
  readonly localAddr: Deno.Addr;
  readonly remoteAddr: Deno.NetAddr;
  #conn: Deno.Conn;
  #rest: Uint8Array | undefined;

  /**
   * Wraps a connection.
   *
   * @param conn The socket.
   * @param source The client's address, or `undefined` to keep the socket's.
   * @param rest The bytes read after the header.
   */
  constructor(
    conn: Deno.Conn,
    source: { hostname: string; port: number } | undefined,
    rest: Uint8Array,
  ) {
    this.#conn = conn;
    this.localAddr = conn.localAddr;
    this.remoteAddr = source === undefined
      ? conn.remoteAddr as Deno.NetAddr
      : { transport: "tcp", hostname: source.hostname, port: source.port };
    this.#rest = rest.length > 0 ? rest : undefined;
  }

  /** The socket underneath. */
  get conn(): Deno.Conn {
    return this.#conn;
  }

  read(buffer: Uint8Array): Promise<number | null> {
    const rest = this.#rest;
    if (rest === undefined) return this.#conn.read(buffer);
    const n = Math.min(buffer.length, rest.length);
    buffer.set(rest.subarray(0, n));
    this.#rest = n === rest.length ? undefined : rest.subarray(n);
    return Promise.resolve(n);
  }

  write(bytes: Uint8Array): Promise<number> {
    return this.#conn.write(bytes);
  }

  close(): void {
    this.#conn.close();
  }

  closeWrite(): Promise<void> {
    return this.#conn.closeWrite();
  }

  ref(): void {
    this.#conn.ref();
  }

  unref(): void {
    this.#conn.unref();
  }

  get readable(): ReadableStream<Uint8Array<ArrayBuffer>> {
    const rest = this.#rest;
    if (rest === undefined) return this.#conn.readable;
    this.#rest = undefined;
    const source = this.#conn.readable;
    return new ReadableStream<Uint8Array<ArrayBuffer>>({
      async start(controller) {
        controller.enqueue(rest.slice());
        for await (const chunk of source) controller.enqueue(chunk);
        controller.close();
      },
    });
  }

  get writable(): WritableStream<Uint8Array<ArrayBufferLike>> {
    return this.#conn.writable;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Reads the PROXY header of a new connection.
 *
 * @param conn The socket.
 * @param signal Gives up (the header took too long).
 * @returns The connection as the client's, past its header, or `undefined`
 * when it ended before sending anything (a proxy's health check).
 * @throws {SyntaxError} When it does not start with a PROXY header.
 */
export async function readProxyHeader(
  conn: Deno.Conn,
  signal: AbortSignal,
): Promise<ProxiedConn | undefined> {
  const buffer = new Uint8Array(MAX_PROXY_HEADER);
  let filled = 0;
  const abort = () => {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  };
  signal.addEventListener("abort", abort, { once: true });
  try {
    for (;;) {
      const header = parseProxyHeader(buffer.subarray(0, filled));
      if (header !== undefined) {
        return new ProxiedConn(conn, header.source, buffer.slice(header.length, filled));
      }
      if (filled === buffer.length) throw new SyntaxError("PROXY header is too long");
      const read = await conn.read(buffer.subarray(filled));
      if (read === null && filled === 0) return undefined;
      if (read === null) throw new SyntaxError("The connection ended before its PROXY header");
      filled += read;
    }
  } finally {
    signal.removeEventListener("abort", abort);
  }
}
