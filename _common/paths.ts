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

function home(hint = "use --data PATH"): string {
  const dir = Deno.build.os === "windows" ? env("USERPROFILE") : env("HOME");
  if (dir === undefined) {
    throw new Error(
      `Cannot find your home directory: ${
        Deno.build.os === "windows" ? "USERPROFILE" : "HOME"
      } is not set; ${hint}`,
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

/**
 * The directory for configuration (the user identity): `$XDG_CONFIG_HOME/chat`
 * or `~/.config/chat` on Linux, `~/Library/Application Support/chat` on macOS,
 * `%APPDATA%\chat` on Windows.
 *
 * @returns The directory (not created).
 * @throws {Error} When the home directory is needed and unknown.
 */
export function configDir(): string {
  const hint = "set it or give the path explicitly";
  switch (Deno.build.os) {
    case "windows":
      return join(env("APPDATA") ?? join(home(hint), "AppData", "Roaming"), "chat");
    case "darwin":
      return join(home(hint), "Library", "Application Support", "chat");
    default:
      return join(env("XDG_CONFIG_HOME") ?? join(home(hint), ".config"), "chat");
  }
}

/**
 * The default identity file: `identity.pem` in {@linkcode configDir}.
 *
 * @returns The path.
 */
export function identityPath(): string {
  return join(configDir(), "identity.pem");
}

/**
 * The list of people the terminal client ignores: `ignore` in
 * {@linkcode configDir}, one name per line.
 *
 * @returns The path.
 */
export function ignorePath(): string {
  return join(configDir(), "ignore");
}
