/**
 * Writing a whole buffer to a connection that may take only part of it.
 *
 * @module
 */

/** Anything that writes part of a buffer at a time, like `Deno.Conn`. */
export interface Writer {
  /** Writes some of `bytes`; resolves with how many. */
  write(bytes: Uint8Array): Promise<number>;
}

/**
 * Writes every byte, looping over partial writes.
 *
 * @param writer Where to write.
 * @param bytes What to write.
 */
export async function writeAll(writer: Writer, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await writer.write(bytes.subarray(offset));
}
