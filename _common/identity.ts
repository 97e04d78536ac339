/**
 * A user's Ed25519 identity: a key pair that signs the login challenge, so a
 * server can tell the same person from someone else using the same name.
 *
 * The key file holds one PKCS#8 `PRIVATE KEY` PEM block, the form
 * `openssl genpkey -algorithm ed25519` writes. PKCS#8 from WebCrypto carries
 * no public key, so it is derived on load: the key is imported once as
 * extractable and exported as a JWK, whose `x` member is the public key. The
 * signing key kept in memory is not extractable.
 *
 * @module
 */

import { dirname } from "node:path";
import { identityPath } from "./paths.ts";

const ALGORITHM = { name: "Ed25519" } as const;
const PUBLIC_KEY_BYTES = 32;
const SIGNATURE_BYTES = 64;
const PEM_LABEL = "PRIVATE KEY";

/** A user identity that can sign a login challenge. */
export interface Identity {
  /** The raw 32-byte Ed25519 public key in base64 (standard alphabet, padded). */
  readonly publicKey: string;
  /**
   * The SHA-256 fingerprint of the public key in the form ssh prints:
   * `SHA256:` then unpadded base64.
   */
  readonly fingerprint: string;
  /**
   * Signs bytes with the private key.
   *
   * @param data The bytes to sign, usually from {@linkcode proofBytes}.
   * @returns The 64-byte signature in base64.
   */
  sign(data: Uint8Array): Promise<string>;
}

class KeyIdentity implements Identity {
  readonly publicKey: string;
  readonly fingerprint: string;
  #privateKey: CryptoKey;

  constructor(privateKey: CryptoKey, publicKey: string, fingerprint: string) {
    this.#privateKey = privateKey;
    this.publicKey = publicKey;
    this.fingerprint = fingerprint;
  }

  async sign(data: Uint8Array): Promise<string> {
    const signature = await crypto.subtle.sign(ALGORITHM, this.#privateKey, bytes(data));
    return new Uint8Array(signature).toBase64();
  }
}

/** Copies into a plain `ArrayBuffer`, the only buffer WebCrypto's types take. */
function bytes(data: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(data);
}

/** Decodes canonical padded base64, or returns `undefined`. */
function decodeBase64(text: string): Uint8Array | undefined {
  if (typeof text !== "string") return undefined;
  try {
    return Uint8Array.fromBase64(text, { lastChunkHandling: "strict" });
  } catch {
    return undefined;
  }
}

async function fingerprintOfRaw(raw: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes(raw)));
  return "SHA256:" + digest.toBase64({ omitPadding: true });
}

/** Builds an identity from PKCS#8 bytes; throws when they are not an Ed25519 key. */
async function fromPkcs8(pkcs8: Uint8Array): Promise<Identity> {
  const extractable = await crypto.subtle.importKey("pkcs8", bytes(pkcs8), ALGORITHM, true, [
    "sign",
  ]);
  const jwk = await crypto.subtle.exportKey("jwk", extractable);
  if (typeof jwk.x !== "string") throw new Error("The key has no public part");
  const raw = Uint8Array.fromBase64(jwk.x, { alphabet: "base64url" });
  if (raw.length !== PUBLIC_KEY_BYTES) throw new Error("The public key has the wrong length");
  const privateKey = await crypto.subtle.importKey("pkcs8", bytes(pkcs8), ALGORITHM, false, [
    "sign",
  ]);
  return new KeyIdentity(privateKey, raw.toBase64(), await fingerprintOfRaw(raw));
}

function encodePem(der: Uint8Array): string {
  const lines = der.toBase64().match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${PEM_LABEL}-----\n${lines.join("\n")}\n-----END ${PEM_LABEL}-----\n`;
}

function decodePem(text: string): Uint8Array | undefined {
  const match = text.match(
    /-----BEGIN PRIVATE KEY-----([A-Za-z0-9+/=\s]*)-----END PRIVATE KEY-----/,
  );
  if (match === null) return undefined;
  return decodeBase64(match[1]!.replace(/\s+/g, ""));
}

/** Reads and parses an identity file, or throws a message that says how to recover. */
async function readIdentity(path: string): Promise<Identity> {
  const text = await Deno.readTextFile(path);
  const der = decodePem(text);
  if (der !== undefined) {
    try {
      return await fromPkcs8(der);
    } catch {
      // Reported below with the recovery advice.
    }
  }
  throw new SyntaxError(
    `Cannot load the identity "${path}": it is not an Ed25519 private key in PEM form; ` +
      `move it away to create a new identity`,
  );
}

async function generatePkcs8(): Promise<Uint8Array> {
  const pair = await crypto.subtle.generateKey(ALGORITHM, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  return new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
}

/**
 * Creates a new identity that lives only in memory.
 *
 * @returns The identity.
 *
 * @example Sign and verify
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { createIdentity, verifySignature } from "./identity.ts";
 *
 * const identity = await createIdentity();
 * const data = new TextEncoder().encode("hello");
 * const signature = await identity.sign(data);
 * equal(await verifySignature(identity.publicKey, signature, data), true);
 * ```
 */
export async function createIdentity(): Promise<Identity> {
  return await fromPkcs8(await generatePkcs8());
}

/**
 * Loads the identity from a PEM file, creating the file with a new key (and
 * its directory) when it does not exist. A new file is readable by its owner
 * only (mode `0600`; Windows ignores the mode) and is never written over: when
 * another process creates it first, that key is used.
 *
 * @param path The key file; by default `identity.pem` in the configuration
 * directory (`~/.config/chat` on Linux).
 * @returns The identity stored in the file.
 * @throws {SyntaxError} When the file is not an Ed25519 private key in PEM
 * form; the message names the file and says to move it away.
 * @throws {Deno.errors.PermissionDenied} When the file cannot be read or written.
 *
 * @example Load the same identity twice
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { join } from "node:path";
 * import { loadIdentity } from "./identity.ts";
 *
 * const dir = await Deno.makeTempDir();
 * try {
 *   const path = join(dir, "identity.pem");
 *   const first = await loadIdentity(path);
 *   const second = await loadIdentity(path);
 *   equal(second.fingerprint, first.fingerprint);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function loadIdentity(path: string = identityPath()): Promise<Identity> {
  try {
    return await readIdentity(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const pkcs8 = await generatePkcs8();
  await Deno.mkdir(dirname(path), { recursive: true });
  try {
    await Deno.writeTextFile(path, encodePem(pkcs8), { mode: 0o600, createNew: true });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    return await readFinished(path);
  }
  return await fromPkcs8(pkcs8);
}

/**
 * Reads a file another process has just created, giving it a moment to finish
 * writing before calling the content corrupt.
 */
async function readFinished(path: string): Promise<Identity> {
  for (let attempt = 0;; attempt++) {
    try {
      return await readIdentity(path);
    } catch (error) {
      if (!(error instanceof SyntaxError) || attempt >= 10) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/**
 * Checks an Ed25519 signature. Never throws: malformed base64, keys or
 * signatures of the wrong length and keys that are not valid points all give
 * `false`.
 *
 * @param publicKey The raw 32-byte public key in padded base64.
 * @param signature The 64-byte signature in padded base64.
 * @param data The bytes that were signed.
 * @returns Whether the signature is valid for the key and the data.
 *
 * @example A signature does not cover other data
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { createIdentity, verifySignature } from "./identity.ts";
 *
 * const identity = await createIdentity();
 * const signature = await identity.sign(new Uint8Array([1]));
 * equal(await verifySignature(identity.publicKey, signature, new Uint8Array([2])), false);
 * equal(await verifySignature("not base64!", signature, new Uint8Array([1])), false);
 * ```
 */
export async function verifySignature(
  publicKey: string,
  signature: string,
  data: Uint8Array,
): Promise<boolean> {
  const raw = decodeBase64(publicKey);
  const sig = decodeBase64(signature);
  if (raw?.length !== PUBLIC_KEY_BYTES || sig?.length !== SIGNATURE_BYTES) return false;
  if (!(data instanceof Uint8Array)) return false;
  try {
    const key = await crypto.subtle.importKey("raw", bytes(raw), ALGORITHM, false, ["verify"]);
    return await crypto.subtle.verify(ALGORITHM, key, bytes(sig), bytes(data));
  } catch {
    return false;
  }
}

/**
 * Computes the fingerprint of a public key: `SHA256:` then the unpadded
 * base64 of the SHA-256 of the raw key, as ssh prints it.
 *
 * @param publicKey The raw 32-byte public key in padded base64.
 * @returns The fingerprint.
 * @throws {SyntaxError} When the key is not padded base64.
 * @throws {RangeError} When the key is not 32 bytes long.
 *
 * @example The fingerprint of an identity
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { createIdentity, fingerprintOf } from "./identity.ts";
 *
 * const identity = await createIdentity();
 * equal(await fingerprintOf(identity.publicKey), identity.fingerprint);
 * ```
 */
export async function fingerprintOf(publicKey: string): Promise<string> {
  const raw = decodeBase64(publicKey);
  if (raw === undefined) {
    throw new SyntaxError(`Cannot read the public key "${publicKey}": it is not base64`);
  }
  if (raw.length !== PUBLIC_KEY_BYTES) {
    throw new RangeError(
      `Cannot read the public key "${publicKey}": it has ${raw.length} bytes, not ${PUBLIC_KEY_BYTES}`,
    );
  }
  return await fingerprintOfRaw(raw);
}

/** What a key proof is bound to: see {@linkcode proofBytes}. */
export interface ProofParts {
  /** The server as the client dialed it: `host:port`, an IPv6 host in brackets. */
  server: string;
  /** The fingerprint of the server's TLS certificate as the client saw it; `""` without TLS. */
  tls: string;
  /** The name the client asked for in its `hello`. */
  name: string;
  /** The server's one-time nonce, from `challenge`. */
  serverNonce: string;
  /** The client's one-time nonce, sent along with the signature in `auth`. */
  clientNonce: string;
}

/**
 * The exact bytes a client signs to log in: the UTF-8 of `"chat-auth-v2"`
 * and then the server, the TLS fingerprint, the name, the server's nonce and
 * the client's nonce, each on its own line. Binding the server as the client
 * dialed it (and the certificate it saw) means a server cannot pass the
 * signature on to log in elsewhere as the user; the nonces make it one-time.
 *
 * @param parts What the proof is bound to.
 * @returns The bytes to sign and to verify.
 * @throws {TypeError} When a part is not text or contains a line feed, which
 * would make the encoding ambiguous.
 *
 * @example The signed text
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { proofBytes } from "./identity.ts";
 *
 * const bytes = proofBytes({
 *   server: "example.org:7777",
 *   tls: "",
 *   name: "alice",
 *   serverNonce: "s",
 *   clientNonce: "c",
 * });
 * equal(new TextDecoder().decode(bytes), "chat-auth-v2\nexample.org:7777\n\nalice\ns\nc");
 * ```
 */
export function proofBytes(parts: ProofParts): Uint8Array {
  const order = ["server", "tls", "name", "serverNonce", "clientNonce"] as const;
  for (const label of order) {
    const value: unknown = parts[label];
    if (typeof value !== "string" || value.includes("\n")) {
      throw new TypeError(
        `Cannot build the key proof: the ${label} "${
          String(value).slice(0, 80)
        }" must be text without line feeds`,
      );
    }
  }
  return new TextEncoder().encode(
    ["chat-auth-v2", ...order.map((label) => parts[label])].join("\n"),
  );
}
