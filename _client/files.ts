/**
 * Files on the receiving side: where they go, names that are safe on every
 * platform, never overwriting, and SHA-256 while streaming.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { extname, join } from "node:path";

// Windows device names, matched against the part before the first dot, trailing spaces removed.
const RESERVED = /^(con|prn|aux|nul|conin\$|conout\$|com[0-9¹²³]|lpt[0-9¹²³])$/i;
// Shown as "_": path separators, characters Windows forbids, controls, line and paragraph
// separators, and bidi controls (so a name cannot pretend to end in another extension).
const VISIBLE_UNSAFE = /[\/\\:*?"<>|\p{Cc}\p{Zl}\p{Zp}\p{Bidi_Control}]/gu;
// Removed: other invisible or formatting characters (zero-width, soft hyphen, variation selectors).
const INVISIBLE = /[\p{Cf}\p{Default_Ignorable_Code_Point}]/gu;
/** Longest safe name in UTF-8 bytes: room is left for " (12)" or a temporary suffix under 255. */
const MAX_NAME_BYTES = 200;
/** A longer "extension" is not kept whole when a name is shortened. */
const MAX_EXTENSION_BYTES = 32;

const encoder = new TextEncoder();
const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });

function byteLength(text: string): number {
  return encoder.encode(text).length;
}

/** The longest prefix of `text`, in whole characters as people see them, within `max` bytes. */
function truncate(text: string, max: number): string {
  let out = "";
  let bytes = 0;
  for (const { segment } of graphemes.segment(text)) {
    bytes += byteLength(segment);
    if (bytes > max) break;
    out += segment;
  }
  return out;
}

/**
 * Makes a file name from the network safe to create on Linux, macOS and
 * Windows: no directories or `..`, no control, invisible or bidi characters,
 * no reserved device names, no leading or trailing dots or spaces, at most
 * 200 UTF-8 bytes.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { safeFileName } from "./files.ts";
 *
 * equal(safeFileName("../../etc/passwd"), "passwd");
 * equal(safeFileName("照片.png"), "照片.png");
 * equal(safeFileName("con .txt"), "_con .txt");
 * ```
 *
 * @param name The name the sender gave.
 * @returns A safe name, never empty.
 */
export function safeFileName(name: string): string {
  let safe = name.toWellFormed().replaceAll("\\", "/");
  safe = safe.slice(safe.lastIndexOf("/") + 1);
  safe = safe.replace(VISIBLE_UNSAFE, "_").replace(INVISIBLE, "").normalize("NFC");
  if (byteLength(safe) > MAX_NAME_BYTES) {
    const dot = safe.lastIndexOf(".");
    const extension = dot > 0 && byteLength(safe.slice(dot)) <= MAX_EXTENSION_BYTES
      ? safe.slice(dot)
      : "";
    const stem = safe.slice(0, safe.length - extension.length);
    safe = truncate(stem, MAX_NAME_BYTES - byteLength(extension)) + extension;
  }
  safe = trim(safe);
  if (/^_*$/.test(safe)) return "file";
  if (RESERVED.test(safe.split(".")[0]!.trimEnd())) {
    // The "_" stays in front of any truncation, so the result is no device name.
    safe = trim(truncate(`_${safe}`, MAX_NAME_BYTES));
  }
  return safe;
}

/** Without leading or trailing dots and spaces (Windows drops trailing ones). */
function trim(name: string): string {
  return name.replace(/^[\s.]+/u, "").replace(/[\s.]+$/u, "");
}

/**
 * A path in `dir` for `name` that does not exist yet: `photo.png`, then
 * `photo (1).png`, `photo (2).png`…
 *
 * @param dir The directory.
 * @param name A safe file name.
 * @returns The free path.
 */
export async function freePath(dir: string, name: string): Promise<string> {
  const extension = extname(name);
  const stem = name.slice(0, name.length - extension.length);
  for (let n = 0;; n++) {
    const candidate = join(dir, n === 0 ? name : `${stem} (${n})${extension}`);
    try {
      await Deno.lstat(candidate);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return candidate;
      throw error;
    }
  }
}

/**
 * Moves a finished temporary file to a free name, without ever replacing an
 * existing file (a link that fails when the name is taken, then the next).
 *
 * @param temporary The finished file.
 * @param dir The directory.
 * @param name A safe file name.
 * @returns Where it ended up.
 */
export async function moveToFreeName(
  temporary: string,
  dir: string,
  name: string,
): Promise<string> {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const target = await freePath(dir, name);
    try {
      await Deno.link(temporary, target);
      await Deno.remove(temporary);
      return target;
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) continue;
      if (
        !(error instanceof Deno.errors.NotSupported ||
          error instanceof Deno.errors.PermissionDenied)
      ) {
        throw error;
      }
      // No hard links here (some file systems): rename, having checked the name is free.
      await Deno.rename(temporary, target);
      return target;
    }
  }
  throw new Error(`Cannot find a free name for "${name}" in "${dir}"`);
}

/**
 * The default download directory: `~/Downloads`
 * (`%USERPROFILE%\Downloads` on Windows).
 *
 * @returns The directory.
 */
export function downloadsDir(): string {
  const home = Deno.build.os === "windows" ? Deno.env.get("USERPROFILE") : Deno.env.get("HOME");
  return join(home ?? ".", "Downloads");
}

/** An incremental SHA-256. */
export function sha256(): { update(bytes: Uint8Array): void; hex(): string } {
  const hash = createHash("sha256");
  return {
    update: (bytes) => void hash.update(bytes),
    hex: () => hash.digest("hex"),
  };
}

/**
 * Hashes a file without reading it whole into memory.
 *
 * @param path The file.
 * @returns Its size and SHA-256 (hex).
 */
export async function hashFile(path: string): Promise<{ size: number; sha256: string }> {
  const hash = sha256();
  let size = 0;
  using file = await Deno.open(path);
  const buffer = new Uint8Array(256 * 1024);
  while (true) {
    const read = await file.read(buffer);
    if (read === null) break;
    hash.update(buffer.subarray(0, read));
    size += read;
  }
  return { size, sha256: hash.hex() };
}

const TYPES: Record<string, string> = {
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".svg": "image/svg+xml",
  ".pdf": "application/pdf",
  ".txt": "text/plain",
  ".md": "text/markdown",
  ".json": "application/json",
  ".zip": "application/zip",
  ".gz": "application/gzip",
  ".mp3": "audio/mpeg",
  ".mp4": "video/mp4",
};

/**
 * Guesses a media type from a file name.
 *
 * @param name The file name.
 * @returns The type, `application/octet-stream` when unknown.
 */
export function mediaType(name: string): string {
  return TYPES[extname(name).toLowerCase()] ?? "application/octet-stream";
}
