/**
 * Builds the self-contained `chat` binary with `deno compile`.
 *
 * Every build uses the `"chat"` permission set from `deno.json` (`-P=chat`), so
 * the binary gets exactly the permissions that `deno task chat` runs with.
 * The version comes from `deno.json`'s `"version"`; the binary reads it from
 * the same file, which `deno compile` embeds because `main.ts` imports it.
 *
 * ```sh
 * deno run -A tools/compile.ts                        # every release target, then dist/SHA256SUMS
 * deno run -A tools/compile.ts --target aarch64-apple-darwin
 * deno run -A tools/compile.ts --host                 # this machine only, as dist/chat
 * deno run -A tools/compile.ts --sums-only --out dist # only (re)write dist/SHA256SUMS
 * deno run -A tools/compile.ts --print-permissions    # the set as --allow-* flags
 * ```
 *
 * Offline builds: `deno compile` downloads the runtime base ("denort") for
 * each target unless `DENORT_BIN` names a local one. `DENORT_BIN` is used for
 * every target, so this script only accepts it when building for the host.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

/** Targets published with each release, in the order they are built. */
const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
] as const;

const PERMISSION_SET = "chat";
const ENTRY_POINT = "main.ts";
const SUMS_FILE = "SHA256SUMS";
const COMPILE_TIMEOUT_MS = 15 * 60 * 1000;
const VERSION_PATTERN = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

const ROOT = new URL("../", import.meta.url);

const USAGE = `Usage: deno run -A tools/compile.ts [options]

Options:
  --target T            Build only target T (repeatable). Default: every release target:
                          ${TARGETS.join("\n                          ")}
  --host                Build only for this machine, as <out>/chat (chat.exe on Windows),
                          with no checksum file. Same result as \`deno task compile\`
  --out DIR             Output directory (default: dist)
  --sums-only           Do not compile; write <out>/${SUMS_FILE} for every chat-* file in <out>
  --expect-version V    Fail unless deno.json's version is V (a leading "v" is ignored)
  --print-permissions   Print the "${PERMISSION_SET}" permission set as --allow-* flags and exit
  -h, --help            Show this help

Environment:
  DENORT_BIN            Local runtime base for offline builds (host target only)`;

/** An expected failure: printed as one line, then the process exits with `exitCode`. */
class CompileError extends Error {
  readonly exitCode: number;

  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = "CompileError";
    this.exitCode = exitCode;
  }
}

type Target = typeof TARGETS[number];

interface DenoConfig {
  version?: unknown;
  permissions?: Record<string, unknown>;
}

async function readConfig(): Promise<DenoConfig> {
  const url = new URL("deno.json", ROOT);
  let text: string;
  try {
    text = await Deno.readTextFile(url);
  } catch (error) {
    throw new CompileError(`Cannot read "${fileURLToPath(url)}": ${errorMessage(error)}`);
  }
  try {
    return JSON.parse(text) as DenoConfig;
  } catch (error) {
    throw new CompileError(`Cannot parse "deno.json": ${errorMessage(error)}`);
  }
}

function readVersion(config: DenoConfig): string {
  const version = config.version;
  if (typeof version !== "string" || !VERSION_PATTERN.test(version)) {
    throw new CompileError(
      `Cannot read the version from "deno.json": expected "version" like "1.2.3", got ${
        JSON.stringify(version)
      }`,
    );
  }
  return version;
}

function readPermissionSet(config: DenoConfig): Record<string, unknown> {
  const set = config.permissions?.[PERMISSION_SET];
  if (set === null || typeof set !== "object" || Array.isArray(set)) {
    throw new CompileError(`Cannot find the "${PERMISSION_SET}" permission set in "deno.json"`);
  }
  return set as Record<string, unknown>;
}

/**
 * Turns a `deno.json` permission set into the equivalent command-line flags.
 * Each entry is `true`, a list of values, or `{ allow, deny, ignore }` of those.
 */
function permissionFlags(set: Record<string, unknown>): string[] {
  const flags: string[] = [];
  for (const [name, value] of Object.entries(set)) {
    if (name === "all") {
      if (value === true) flags.push("--allow-all");
      continue;
    }
    const rules = value !== null && typeof value === "object" && !Array.isArray(value)
      ? value as Record<string, unknown>
      : { allow: value };
    for (const [kind, rule] of Object.entries(rules)) {
      if (!["allow", "deny", "ignore"].includes(kind)) {
        throw new CompileError(`Cannot read permission "${name}": unknown key "${kind}"`);
      }
      if (rule === true) {
        flags.push(`--${kind}-${name}`);
      } else if (Array.isArray(rule) && rule.length > 0) {
        flags.push(`--${kind}-${name}=${rule.join(",")}`);
      } else if (rule !== false && rule !== undefined && !Array.isArray(rule)) {
        throw new CompileError(
          `Cannot read permission "${name}": expected true, false or a list, got ${
            JSON.stringify(rule)
          }`,
        );
      }
    }
  }
  return flags;
}

function binaryName(target: string): string {
  return target.includes("windows") ? `chat-${target}.exe` : `chat-${target}`;
}

function parseTargets(values: string[]): Target[] {
  if (values.length === 0) return [...TARGETS];
  const targets: Target[] = [];
  for (const value of values) {
    const target = TARGETS.find((known) => known === value);
    if (target === undefined) {
      throw new CompileError(
        `Unknown target "${value}": expected one of ${TARGETS.join(", ")}`,
        2,
      );
    }
    if (!targets.includes(target)) targets.push(target);
  }
  return targets;
}

function checkDenortBin(targets: readonly string[]): void {
  const denort = Deno.env.get("DENORT_BIN");
  if (!denort) return;
  const foreign = targets.find((target) => target !== Deno.build.target);
  if (foreign !== undefined) {
    throw new CompileError(
      `Cannot build "${foreign}" with DENORT_BIN set: deno compile would use "${denort}" ` +
        `for every target; unset DENORT_BIN or build only "${Deno.build.target}"`,
    );
  }
}

/** Runs one `deno compile` from the project root, writing the binary to `output`. */
async function compile(output: string, target: string | undefined): Promise<void> {
  const args = [
    "compile",
    `-P=${PERMISSION_SET}`,
    "--no-prompt",
    // A young generation of 4 MiB: a burst of messages costs the server tens of megabytes less,
    // and no more time (bench/results). The same flag as the `chat` and `compile` tasks.
    "--v8-flags=--max-semi-space-size=4",
    ...(target === undefined ? [] : ["--target", target]),
    "--output",
    output,
    ENTRY_POINT,
  ];
  const label = target ?? Deno.build.target;
  const signal = AbortSignal.timeout(COMPILE_TIMEOUT_MS);
  const result = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal,
  }).output();
  if (result.success) return;

  const text = new TextDecoder().decode(result.stdout) + new TextDecoder().decode(result.stderr);
  if (signal.aborted) {
    throw new CompileError(
      `Cannot compile "${label}": deno compile did not finish within ${
        COMPILE_TIMEOUT_MS / 60_000
      } minutes`,
    );
  }
  const download = text.match(/error sending request for url \((\S+?)\)/);
  if (download || text.includes("Setting up base binary")) {
    const where = download ? ` from "${download[1]}"` : "";
    throw new CompileError(
      `Cannot compile "${label}": the runtime base could not be downloaded${where}; ` +
        `set DENORT_BIN to a local denort ${Deno.version.deno} binary to build the host target offline`,
    );
  }
  // Type errors and the like: the compiler's own report is what the reader needs.
  await Deno.stderr.write(
    new TextEncoder().encode(text.replace(/\nStack backtrace:[\s\S]*$/, "\n")),
  );
  throw new CompileError(
    `Cannot compile "${label}": deno compile exited with code ${result.code}`,
  );
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path, { read: true });
  const buffer = new Uint8Array(1 << 20);
  while (true) {
    const read = await file.read(buffer);
    if (read === null) break;
    hash.update(buffer.subarray(0, read));
  }
  return hash.digest("hex");
}

/** Writes `<dir>/SHA256SUMS` in `sha256sum` format for `names`, sorted by name. */
async function writeChecksums(dir: string, names: readonly string[]): Promise<string> {
  const lines: string[] = [];
  for (const name of [...names].sort()) {
    lines.push(`${await sha256File(join(dir, name))}  ${name}\n`);
  }
  const path = join(dir, SUMS_FILE);
  await Deno.writeTextFile(path, lines.join(""));
  return path;
}

async function listBinaries(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && entry.name.startsWith("chat-")) names.push(entry.name);
    }
  } catch (error) {
    throw new CompileError(`Cannot list "${dir}": ${errorMessage(error)}`);
  }
  if (names.length === 0) {
    throw new CompileError(`Cannot write ${SUMS_FILE}: no chat-* files in "${dir}"`);
  }
  return names;
}

function displayPath(path: string): string {
  const shown = relative(Deno.cwd(), path);
  return shown.startsWith("..") ? path : shown;
}

async function describeSize(path: string): Promise<string> {
  const { size } = await Deno.stat(path);
  return `${(size / 1_000_000).toFixed(1)} MB`;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function normalizeTag(tag: string): string {
  return tag.replace(/^refs\/tags\//, "").replace(/^v/, "");
}

async function main(args: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        target: { type: "string", multiple: true, default: [] },
        host: { type: "boolean", default: false },
        out: { type: "string", default: "dist" },
        "sums-only": { type: "boolean", default: false },
        "expect-version": { type: "string" },
        "print-permissions": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    throw new CompileError(`${errorMessage(error)}; run with --help for usage`, 2);
  }
  const options = parsed.values;
  if (options.help) {
    console.log(USAGE);
    return;
  }

  const config = await readConfig();
  if (options["print-permissions"]) {
    console.log(permissionFlags(readPermissionSet(config)).join(" "));
    return;
  }

  const version = readVersion(config);
  const expected = options["expect-version"];
  if (expected !== undefined && normalizeTag(expected) !== version) {
    throw new CompileError(
      `Version mismatch: expected "${normalizeTag(expected)}" but deno.json says "${version}"; ` +
        `update "version" in deno.json or tag "v${version}"`,
    );
  }

  const outDir = resolve(options.out);
  if (options["sums-only"]) {
    if (options.host || options.target.length > 0) {
      throw new CompileError("--sums-only cannot be combined with --target or --host", 2);
    }
    const sums = await writeChecksums(outDir, await listBinaries(outDir));
    console.log(`Wrote ${displayPath(sums)}`);
    return;
  }

  readPermissionSet(config);
  await Deno.mkdir(outDir, { recursive: true });

  if (options.host) {
    if (options.target.length > 0) {
      throw new CompileError("--host cannot be combined with --target", 2);
    }
    const output = join(outDir, Deno.build.os === "windows" ? "chat.exe" : "chat");
    console.log(`Compiling chat ${version} for ${Deno.build.target}`);
    await compile(output, undefined);
    console.log(`Built ${displayPath(output)} (${await describeSize(output)})`);
    return;
  }

  const targets = parseTargets(options.target);
  checkDenortBin(targets);
  const built: string[] = [];
  for (const target of targets) {
    const output = join(outDir, binaryName(target));
    console.log(`Compiling chat ${version} for ${target}`);
    await compile(output, target);
    console.log(`Built ${displayPath(output)} (${await describeSize(output)})`);
    built.push(binaryName(target));
  }
  const sums = await writeChecksums(outDir, built);
  console.log(`Wrote ${displayPath(sums)}`);
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (error) {
    if (error instanceof CompileError) {
      console.error(`error: ${error.message}`);
      Deno.exit(error.exitCode);
    }
    throw error;
  }
}
