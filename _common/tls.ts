/**
 * TLS certificates for `chat serve --tls`, and the fingerprints that
 * `chat connect --fingerprint` pins.
 *
 * A server makes itself a self-signed certificate once and keeps it. A client
 * that was told the certificate's fingerprint fetches the certificate without
 * verifying it ({@linkcode fetchPeerCertificate}), compares fingerprints, and
 * only when they are equal connects again with that certificate as the only
 * trusted root (`Deno.connectTls({ caCerts: [pem] })`).
 *
 * @module
 */

import { x509 } from "./_deps_x509.ts";
import { isIP } from "node:net";
import { join } from "node:path";
import { connect as connectTls } from "node:tls";

x509.cryptoProvider.set(crypto);

const KEY_ALGORITHM = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNING_ALGORITHM = { name: "ECDSA", hash: "SHA-256" } as const;
const DAY_MS = 86_400_000;
const CERT_FILE = "tls-cert.pem";
const KEY_FILE = "tls-key.pem";

/** Options for {@linkcode createSelfSignedCertificate}. */
export interface CertificateOptions {
  /**
   * How many days the certificate is valid for, from now.
   *
   * @default {3650}
   */
  days?: number;
}

/** A certificate with its private key. */
export interface Certificate {
  /** The certificate in PEM form. */
  cert: string;
  /** The private key in PKCS#8 PEM form. */
  key: string;
  /** The certificate's fingerprint, as {@linkcode certificateFingerprint} gives it. */
  fingerprint: string;
}

/** A certificate kept in files, as {@linkcode loadOrCreateCertificate} returns it. */
export interface StoredCertificate extends Certificate {
  /** Whether this call created the files. */
  created: boolean;
  /** The certificate file. */
  certPath: string;
  /** The private key file. */
  keyPath: string;
}

/** Options for {@linkcode fetchPeerCertificate}. */
export interface FetchPeerCertificateOptions {
  /**
   * How long to wait for the connection and the handshake, in milliseconds.
   *
   * @default {10000}
   */
  timeout?: number;
  /** Stops waiting; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Removes the brackets of `[::1]` and the zone of `fe80::1%eth0`. */
function bareHost(host: string): string {
  const unbracketed = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  const zone = unbracketed.indexOf("%");
  return zone !== -1 && isIP(unbracketed.slice(0, zone)) === 6
    ? unbracketed.slice(0, zone)
    : unbracketed;
}

const DNS_NAME =
  /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/i;

function subjectAltName(hosts: string[]): x509.JsonGeneralName[] {
  const names: x509.JsonGeneralName[] = [];
  const seen = new Set<string>();
  for (const host of hosts) {
    const bare = typeof host === "string" ? bareHost(host.trim()) : "";
    const type = isIP(bare) !== 0 ? "ip" : DNS_NAME.test(bare) ? "dns" : undefined;
    if (type === undefined) {
      throw new TypeError(
        `Cannot create a certificate for "${host}": it is not a host name or an IP address`,
      );
    }
    const key = `${type}:${bare.toLowerCase()}`;
    if (seen.has(key)) continue;
    seen.add(key);
    names.push({ type, value: bare });
  }
  return names;
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** The DER bytes of the first `CERTIFICATE` block of a PEM text, or `undefined`. */
function certificateDer(pem: string): Uint8Array<ArrayBuffer> | undefined {
  if (typeof pem !== "string") return undefined;
  const match = pem.match(
    /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*)-----END CERTIFICATE-----/,
  );
  if (match === null) return undefined;
  try {
    const der = Uint8Array.fromBase64(match[1]!.replace(/\s+/g, ""));
    return der.length === 0 ? undefined : der;
  } catch {
    return undefined;
  }
}

function derToPem(der: Uint8Array): string {
  const lines = der.toBase64().match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join("\n")}\n-----END CERTIFICATE-----\n`;
}

/**
 * Creates a self-signed certificate for a server: ECDSA P-256 with SHA-256,
 * subject `CN=chat`, a random serial number, every host in the subject
 * alternative name (IP addresses as IP entries, the rest as DNS names), key
 * usage digital signature, extended key usage server authentication. It is
 * valid from a day ago, to allow for clocks that are behind.
 *
 * @param hosts The names and addresses clients will use, such as
 * {@linkcode localHosts}; `[::1]` may be written with brackets.
 * @param options How long the certificate is valid.
 * @returns The certificate, its PKCS#8 private key and its fingerprint.
 * @throws {TypeError} When there is no host, or one is neither a host name nor
 * an IP address.
 * @throws {RangeError} When `days` is not a positive whole number.
 *
 * @example A certificate for this machine
 * ```ts
 * import { match } from "node:assert/strict";
 * import { createSelfSignedCertificate, localHosts } from "./tls.ts";
 *
 * const { cert, key, fingerprint } = await createSelfSignedCertificate(localHosts());
 * match(cert, /^-----BEGIN CERTIFICATE-----/);
 * match(key, /^-----BEGIN PRIVATE KEY-----/);
 * match(fingerprint, /^SHA256:([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
 * ```
 */
export async function createSelfSignedCertificate(
  hosts: string[],
  options: CertificateOptions = {},
): Promise<Certificate> {
  const { days = 3650 } = options;
  if (!Number.isSafeInteger(days) || days < 1) {
    throw new RangeError(
      `Cannot create a certificate valid for "${days}" days: use a whole number from 1`,
    );
  }
  if (!Array.isArray(hosts) || hosts.length === 0) {
    throw new TypeError("Cannot create a certificate: no host name or address given");
  }
  const names = subjectAltName(hosts);
  const keys = await crypto.subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"]);
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] = (serial[0]! & 0x3f) | 0x40; // Positive, and no leading zero byte.
  const now = Date.now();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: toHex(serial),
    name: "CN=chat",
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + days * DAY_MS),
    signingAlgorithm: SIGNING_ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names),
    ],
  }, crypto);
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  const key = x509.PemConverter.encode(pkcs8, "PRIVATE KEY") + "\n";
  const cert = derToPem(new Uint8Array(certificate.rawData));
  return { cert, key, fingerprint: await certificateFingerprint(cert) };
}

/**
 * Computes a certificate's fingerprint: `SHA256:` then the SHA-256 of the DER
 * bytes in upper-case hex pairs joined by colons, as
 * `openssl x509 -noout -fingerprint -sha256` prints it after the `=`.
 *
 * @param certPem The certificate in PEM form (the first certificate counts).
 * @returns The fingerprint.
 * @throws {SyntaxError} When the text holds no PEM certificate.
 *
 * @example The form of a fingerprint
 * ```ts
 * import { match } from "node:assert/strict";
 * import { certificateFingerprint, createSelfSignedCertificate } from "./tls.ts";
 *
 * const { cert } = await createSelfSignedCertificate(["localhost"]);
 * match(await certificateFingerprint(cert), /^SHA256:([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
 * ```
 */
export async function certificateFingerprint(certPem: string): Promise<string> {
  const der = certificateDer(certPem);
  if (der === undefined) {
    throw new SyntaxError("Cannot read the certificate: it is not a PEM certificate");
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", der));
  return "SHA256:" + toHex(digest).toUpperCase().match(/../g)!.join(":");
}

/**
 * The host names and addresses a certificate is valid for (its subject
 * alternative names of type DNS and IP), lower-cased.
 *
 * @param certPem The certificate in PEM form (the first certificate counts).
 * @returns The names; empty when it has none.
 * @throws {SyntaxError} When the text holds no PEM certificate.
 *
 * @example The names of a generated certificate
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { certificateNames, createSelfSignedCertificate } from "./tls.ts";
 *
 * const { cert } = await createSelfSignedCertificate(["Chat.Example", "127.0.0.1"]);
 * deepEqual(certificateNames(cert), ["chat.example", "127.0.0.1"]);
 * ```
 */
export function certificateNames(certPem: string): string[] {
  const der = certificateDer(certPem);
  if (der === undefined) {
    throw new SyntaxError("Cannot read the certificate: it is not a PEM certificate");
  }
  const extension = new x509.X509Certificate(der).getExtension(
    x509.SubjectAlternativeNameExtension,
  );
  return (extension?.names.items ?? [])
    .filter((name) => name.type === "dns" || name.type === "ip")
    .map((name) => name.value.toLowerCase());
}

/**
 * Reads a fingerprint as a user may type or paste it and gives the canonical
 * form of {@linkcode certificateFingerprint}. Accepts an optional `SHA256:`
 * or `sha256=` prefix in any case, and hex in either case, either with a colon
 * between every byte or with no separator at all.
 *
 * @param text The fingerprint as given.
 * @returns The canonical fingerprint, or `undefined` when the text is not 32
 * bytes of hex.
 *
 * @example Canonical forms
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { normalizeFingerprint } from "./tls.ts";
 *
 * const canonical = "SHA256:" + "AB:".repeat(31) + "AB";
 * equal(normalizeFingerprint("sha256:" + "ab".repeat(32)), canonical);
 * equal(normalizeFingerprint("AB".repeat(32)), canonical);
 * equal(normalizeFingerprint("SHA256:AB:CD"), undefined);
 * ```
 */
export function normalizeFingerprint(text: string): string | undefined {
  if (typeof text !== "string") return undefined;
  const hex = text.trim().replace(/^sha-?256\s*[:=]\s*/i, "");
  if (!/^(?:[0-9a-f]{64}|[0-9a-f]{2}(?::[0-9a-f]{2}){31})$/i.test(hex)) return undefined;
  return "SHA256:" + hex.replaceAll(":", "").toUpperCase().match(/../g)!.join(":");
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Checks the pair read from `dir` and names the file and the way out when it is broken. */
async function checkStored(
  cert: string,
  key: string,
  certPath: string,
  keyPath: string,
): Promise<string> {
  const advice = "move both files away to create a new certificate";
  if (certificateDer(cert) === undefined) {
    throw new SyntaxError(
      `Cannot load the TLS certificate "${certPath}": it is not a PEM certificate; ${advice}`,
    );
  }
  if (!/-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/.test(key)) {
    throw new SyntaxError(
      `Cannot load the TLS key "${keyPath}": it is not a PEM private key; ${advice}`,
    );
  }
  return await certificateFingerprint(cert);
}

/**
 * Reads the pair, waiting a moment when the key is there without the
 * certificate: another process may be between writing the one and the other.
 */
async function readPair(
  certPath: string,
  keyPath: string,
): Promise<{ cert: string; key: string } | undefined> {
  for (let attempt = 0;; attempt++) {
    // The certificate appears (by rename) only after the key is complete, so
    // it is read first: when it exists, the key must exist and be whole.
    const cert = await readOptional(certPath);
    const key = await readOptional(keyPath);
    if (cert !== undefined && key !== undefined) return { cert, key };
    if (cert === undefined && key === undefined) return undefined;
    if (cert === undefined && attempt < 10) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      continue;
    }
    const [present, missing] = cert !== undefined ? [certPath, keyPath] : [keyPath, certPath];
    throw new SyntaxError(
      `Cannot load the TLS certificate: "${missing}" is missing but "${present}" exists; move it away to create a new certificate`,
    );
  }
}

/**
 * Loads the server certificate kept in a directory, creating it on first use:
 * `tls-cert.pem` and `tls-key.pem` (the key readable by its owner only, mode
 * `0600`; Windows ignores the mode). Existing files are never written over; a
 * certificate is kept for the hosts it was made for, so `hosts` only matters
 * the first time.
 *
 * @param dir The directory, created when missing.
 * @param hosts The names and addresses for a new certificate.
 * @returns The certificate, its key, its fingerprint, the file paths and
 * whether this call created them.
 * @throws {SyntaxError} When a file is damaged or only one of the two exists;
 * the message names the file and says to move it away.
 * @throws {TypeError} When a new certificate is needed and a host is invalid.
 *
 * @example Created once, then loaded
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { loadOrCreateCertificate } from "./tls.ts";
 *
 * const dir = await Deno.makeTempDir();
 * try {
 *   const first = await loadOrCreateCertificate(dir, ["localhost"]);
 *   const second = await loadOrCreateCertificate(dir, ["localhost"]);
 *   equal(first.created, true);
 *   equal(second.created, false);
 *   equal(second.fingerprint, first.fingerprint);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function loadOrCreateCertificate(
  dir: string,
  hosts: string[],
): Promise<StoredCertificate> {
  const certPath = join(dir, CERT_FILE);
  const keyPath = join(dir, KEY_FILE);
  const stored = await readPair(certPath, keyPath);
  if (stored !== undefined) {
    const fingerprint = await checkStored(stored.cert, stored.key, certPath, keyPath);
    return { ...stored, fingerprint, created: false, certPath, keyPath };
  }
  const fresh = await createSelfSignedCertificate(hosts);
  await Deno.mkdir(dir, { recursive: true });
  try {
    // Whoever creates the key writes the certificate; the others wait for it.
    await Deno.writeTextFile(keyPath, fresh.key, { mode: 0o600, createNew: true });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    return await loadOrCreateCertificate(dir, hosts);
  }
  // Written aside and renamed, so that a reader never sees half a certificate.
  const partPath = `${certPath}.${toHex(crypto.getRandomValues(new Uint8Array(8)))}.part`;
  try {
    await Deno.writeTextFile(partPath, fresh.cert, { mode: 0o644, createNew: true });
    await Deno.rename(partPath, certPath);
  } catch (error) {
    await Deno.remove(partPath).catch(() => {});
    throw error;
  }
  return { ...fresh, created: true, certPath, keyPath };
}

/**
 * Fetches a TLS server's certificate without verifying it, so that its
 * fingerprint can be compared with a pinned one. The certificate must never be
 * trusted on its own: connect again with it as the only root
 * (`Deno.connectTls({ hostname, port, caCerts: [pem] })`) and only after the
 * fingerprints matched. Needs the `net` permission for the host.
 *
 * @param hostname The server's name or address (`[::1]` may have brackets).
 * @param port The server's port.
 * @param options A timeout and an abort signal.
 * @returns The server's certificate in PEM form.
 * @throws {Error} When the server cannot be reached, the handshake fails or
 * times out: `Cannot connect to "host:port" over TLS: reason`.
 *
 * @example Pin a server's certificate
 * ```ts ignore
 * import { certificateFingerprint, fetchPeerCertificate, normalizeFingerprint } from "./tls.ts";
 *
 * const pinned = normalizeFingerprint(Deno.args[0]);
 * const pem = await fetchPeerCertificate("chat.example.org", 7777);
 * if (pinned === undefined || (await certificateFingerprint(pem)) !== pinned) {
 *   throw new Error("The server's certificate does not match the fingerprint");
 * }
 * using conn = await Deno.connectTls({ hostname: "chat.example.org", port: 7777, caCerts: [pem] });
 * ```
 */
export function fetchPeerCertificate(
  hostname: string,
  port: number,
  options: FetchPeerCertificateOptions = {},
): Promise<string> {
  const { timeout = 10_000, signal } = options;
  const host = bareHost(hostname);
  const address = isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<string>((resolve, reject) => {
    let outcome: { pem: string } | { error: unknown } | undefined;
    let socket: ReturnType<typeof connectTls>;
    try {
      socket = connectTls({
        host,
        port,
        ...(isIP(host) === 0 ? { servername: host } : {}),
        rejectUnauthorized: false,
      });
    } catch (error) {
      reject(
        new Error(`Cannot connect to "${address}" over TLS: ${message(error)}`, { cause: error }),
      );
      return;
    }
    const timer = setTimeout(
      () =>
        finish({
          error: new Error(
            `Cannot connect to "${address}" over TLS: no answer within ${timeout} ms`,
          ),
        }),
      timeout,
    );
    const onAbort = () => finish({ error: signal!.reason });
    signal?.addEventListener("abort", onAbort, { once: true });

    function finish(result: { pem: string } | { error: unknown }): void {
      if (outcome !== undefined) return;
      outcome = result;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      socket.destroy(); // Settled on "close", once the socket has let go of everything.
    }
    function settle(): void {
      if (outcome === undefined) {
        outcome = {
          error: new Error(`Cannot connect to "${address}" over TLS: the connection closed`),
        };
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      }
      if ("pem" in outcome) resolve(outcome.pem);
      else reject(outcome.error);
    }

    socket.once("secureConnect", () => {
      const raw = socket.getPeerCertificate(true)?.raw;
      finish(
        raw instanceof Uint8Array && raw.length > 0 ? { pem: derToPem(raw) } : {
          error: new Error(
            `Cannot connect to "${address}" over TLS: the server sent no certificate`,
          ),
        },
      );
    });
    socket.on("error", (error: Error) => {
      finish({
        error: new Error(`Cannot connect to "${address}" over TLS: ${reason(error)}`, {
          cause: error,
        }),
      });
    });
    socket.once("close", settle);
  });
}

/**
 * The names and addresses this machine can be reached by, for a certificate:
 * `localhost`, `127.0.0.1`, `::1`, the host name and every address of the
 * network interfaces that is not a loopback address. The host name and the
 * interfaces are left out when the `sys` permission does not allow reading
 * them.
 *
 * @returns The hosts, without duplicates.
 *
 * @example Always includes the loopback names
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { localHosts } from "./tls.ts";
 *
 * ok(localHosts().includes("localhost"));
 * ```
 */
export function localHosts(): string[] {
  const hosts = new Set(["localhost", "127.0.0.1", "::1"]);
  try {
    const name = Deno.hostname().trim();
    if (DNS_NAME.test(name)) hosts.add(name.toLowerCase());
  } catch {
    // No permission to read the host name.
  }
  try {
    for (const { address } of Deno.networkInterfaces()) {
      const bare = bareHost(address);
      const kind = isIP(bare);
      if (kind === 0 || isLoopback(bare, kind)) continue;
      hosts.add(bare);
    }
  } catch {
    // No permission to list the interfaces.
  }
  return [...hosts];
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const REASONS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ETIMEDOUT: "connection timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ENOTFOUND: "unknown host",
  EAI_AGAIN: "cannot look up the host name",
};

/** A short reason for a socket error, such as `connection refused`. */
function reason(error: Error): string {
  const code = (error as { code?: unknown }).code;
  // A plain-text answer to the TLS greeting.
  if (/InvalidContentType|wrong version number/i.test(error.message)) {
    return "this port does not speak TLS";
  }
  return (typeof code === "string" ? REASONS[code] : undefined) ?? error.message;
}

function isLoopback(address: string, kind: number): boolean {
  return kind === 4
    ? address.startsWith("127.")
    : address === "::1" || address === "0:0:0:0:0:0:0:1";
}
