/**
 * The short form of a fingerprint, for people to read aloud and compare: the
 * first 15 bytes (120 bits) of the SHA-256 digest in base32, in six groups of
 * four, such as `K5QF-2M4X-…`. Certificates (`SHA256:AB:CD:…`) and keys
 * (`SHA256:` and base64) have the same short form, and the full forms stay
 * accepted wherever a fingerprint is asked for.
 *
 * @module
 */

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** Bytes of the digest the short form keeps. */
export const SHORT_FINGERPRINT_BYTES = 15;

/** The SHA-256 digest in a full fingerprint of either kind, or `undefined`. */
function digestOf(fingerprint: string): Uint8Array | undefined {
  const body = fingerprint.trim().replace(/^sha-?256\s*[:=]\s*/i, "");
  if (/^(?:[0-9a-f]{2}:){31}[0-9a-f]{2}$/i.test(body) || /^[0-9a-f]{64}$/i.test(body)) {
    return Uint8Array.fromHex(body.replaceAll(":", ""));
  }
  if (!/^[A-Za-z0-9+/]{43}=?$/.test(body)) return undefined;
  try {
    const digest = Uint8Array.fromBase64(body);
    return digest.length === 32 ? digest : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The short form of a certificate's or a key's fingerprint.
 *
 * @example The same form for both kinds
 * ```ts
 * import { equal, match } from "node:assert/strict";
 * import { shortFingerprint } from "./fingerprint.ts";
 *
 * const hex = "SHA256:" + Array(32).fill("00").join(":");
 * const base64 = "SHA256:" + new Uint8Array(32).toBase64({ omitPadding: true });
 * equal(shortFingerprint(hex), "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA");
 * equal(shortFingerprint(base64), shortFingerprint(hex));
 * match(shortFingerprint("SHA256:" + "AB:".repeat(31) + "AB")!, /^([A-Z2-7]{4}-){5}[A-Z2-7]{4}$/);
 * ```
 *
 * @param fingerprint A full fingerprint: `SHA256:` and 32 bytes in hex (a
 * certificate) or in base64 (a key).
 * @returns The short form, or `undefined` when the text is not a fingerprint.
 */
export function shortFingerprint(fingerprint: string): string | undefined {
  const digest = digestOf(fingerprint);
  if (digest === undefined) return undefined;
  let bits = 0;
  let value = 0;
  let text = "";
  for (const byte of digest.subarray(0, SHORT_FINGERPRINT_BYTES)) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      text += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  return text.match(/.{4}/g)!.join("-");
}

/**
 * Reads a short fingerprint as a person may type it: any case, with or
 * without the dashes, an optional `SHA256:` before it.
 *
 * @param text The text.
 * @returns The short form as {@linkcode shortFingerprint} writes it, or
 * `undefined` when the text is not one.
 */
export function readShortFingerprint(text: string): string | undefined {
  const body = text.trim().replace(/^sha-?256\s*[:=]\s*/i, "").replace(/[-\s]/g, "")
    .toUpperCase();
  if (!/^[A-Z2-7]{24}$/.test(body)) return undefined;
  return body.match(/.{4}/g)!.join("-");
}
