/**
 * Random tokens: resume tokens, transfer ids and tokens, challenge nonces.
 *
 * @module
 */

/**
 * A random token of `bytes` bytes in base64 without padding.
 *
 * @param bytes How many random bytes.
 * @param alphabet `base64url` for tokens that travel in names and URLs;
 * `base64` where the protocol says base64.
 * @returns The token.
 */
export function randomToken(
  bytes: number,
  alphabet: "base64" | "base64url" = "base64url",
): string {
  return crypto.getRandomValues(new Uint8Array(bytes)).toBase64({ alphabet, omitPadding: true });
}
