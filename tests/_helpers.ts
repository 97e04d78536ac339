/**
 * Small helpers shared by the tests: where a test server listens, a
 * temporary directory that is always removed, joining, hashing and making
 * bytes, and promises awaited late.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import type { ServeOptions } from "../mod.ts";

/**
 * A loopback port free now, for a program that must be told its port
 * before it starts (HAProxy, PostgreSQL, a `chat serve` process).
 *
 * @returns The port.
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Options for a test server: loopback only, on any free port. */
export const local = { hostname: "127.0.0.1", port: 0 } satisfies ServeOptions;

/** {@linkcode local}, with rate limits so high that a test's bursts never meet them. */
export const unthrottled = { ...local, rateLimit: 1e6, rateBurst: 1e6 } satisfies ServeOptions;

/**
 * Runs `fn` with a fresh temporary directory, and removes the directory
 * afterwards, whether `fn` succeeds or throws.
 *
 * @param fn What to do in the directory.
 * @param prefix The start of the directory's name.
 * @returns What `fn` returns.
 */
export async function withTempDir<T>(
  fn: (dir: string) => Promise<T>,
  prefix = "chat-test-",
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Runs `fn` in a fresh temporary directory holding `files`, and removes the
 * directory afterwards.
 *
 * @param files Text of each file, by its path in the directory (`/` separated).
 * @param fn What to do in the directory.
 * @param prefix The start of the directory's name.
 * @returns What `fn` returns.
 */
export function withFiles<T>(
  files: Record<string, string>,
  fn: (dir: string) => Promise<T>,
  prefix = "chat-test-",
): Promise<T> {
  return withTempDir(async (dir) => {
    for (const [name, text] of Object.entries(files)) {
      await Deno.mkdir(join(dir, dirname(name)), { recursive: true });
      await Deno.writeTextFile(join(dir, name), text);
    }
    return await fn(dir);
  }, prefix);
}

/** The bytes of every part, one after the other. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const joined = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.length;
  }
  return joined;
}

/**
 * A copy of `bytes` with one bit flipped.
 *
 * @param bytes The bytes to copy.
 * @param bit Which bit: `0` is the lowest bit of the first byte, `8` that of the second.
 * @returns The copy.
 */
export function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const flipped = bytes.slice();
  const index = bit >> 3;
  const byte = flipped[index];
  if (byte === undefined) {
    throw new RangeError(`Cannot flip bit "${bit}" of ${bytes.length} bytes`);
  }
  flipped[index] = byte ^ (1 << (bit & 7));
  return flipped;
}

/** The SHA-256 of bytes, in hex. */
export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** `size` random bytes (`getRandomValues` fills at most 64 KiB a call). */
export function randomBytes(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += 65536) {
    crypto.getRandomValues(bytes.subarray(offset, offset + 65536));
  }
  return bytes;
}

/** Catches a rejection at once, so a failure that comes early is not "unhandled". */
export function settle<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}
