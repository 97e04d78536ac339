/**
 * Where `chat` keeps its files on each platform.
 *
 * @module
 */

import { join } from "node:path";

function env(name: string): string | undefined {
  try {
    const value = Deno.env.get(name);
    return value === "" ? undefined : value;
  } catch {
    return undefined;
  }
}

function home(): string {
  const dir = Deno.build.os === "windows" ? env("USERPROFILE") : env("HOME");
  if (dir === undefined) {
    throw new Error(
      `Cannot find your home directory: ${
        Deno.build.os === "windows" ? "USERPROFILE" : "HOME"
      } is not set; use --data PATH`,
    );
  }
  return dir;
}

/**
 * The directory for data (the history database): `$XDG_DATA_HOME/chat` or
 * `~/.local/share/chat` on Linux, `~/Library/Application Support/chat` on
 * macOS, `%LOCALAPPDATA%\chat` on Windows.
 *
 * @returns The directory (not created).
 */
export function dataDir(): string {
  switch (Deno.build.os) {
    case "windows":
      return join(env("LOCALAPPDATA") ?? join(home(), "AppData", "Local"), "chat");
    case "darwin":
      return join(home(), "Library", "Application Support", "chat");
    default:
      return join(env("XDG_DATA_HOME") ?? join(home(), ".local", "share"), "chat");
  }
}

/**
 * The default history database: `chat.db` in {@linkcode dataDir}.
 *
 * @returns The path.
 */
export function defaultDatabase(): string {
  return join(dataDir(), "chat.db");
}
