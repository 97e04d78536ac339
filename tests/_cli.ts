/**
 * Runs the `chat` command the way a user does: `deno run` with the `chat`
 * permission set (the one the compiled binary gets), from the repository root
 * so `deno.json` is found. Output is read as it arrives, so a test waits for
 * a line, never for a fixed time.
 *
 * @module
 */

import { equal, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import denoConfig from "../deno.json" with { type: "json" };

const STACK_TRACE = /^\s+at /m;

/**
 * A private home for the spawned programs: their key and data go here, not
 * into the real user's folders.
 */
export const HOME: string = Deno.makeTempDirSync({ prefix: "chat-test-" });
globalThis.addEventListener("unload", () => Deno.removeSync(HOME, { recursive: true }));

/** The repository root, where `deno.json` lives. */
export const ROOT: URL = new URL("../", import.meta.url);

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const encoder = new TextEncoder();

/** How long a helper waits for output or an exit before giving up, in ms. */
export const TIMEOUT = 15_000;

/**
 * Races a promise against a timer, so a broken test fails instead of hanging.
 * The timer is always cleared.
 */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Text read from a child's stdout or stderr, chunk by chunk, as it arrives. */
export class OutputReader {
  readonly #name: string;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  #text = "";
  #consumed = 0;
  #pending: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;
  #done = false;

  constructor(stream: ReadableStream<Uint8Array>, name: string) {
    this.#reader = stream.getReader();
    this.#name = name;
  }

  /** Everything read so far. */
  get text(): string {
    return this.#text;
  }

  /** Reads one more chunk; `false` at the end of the stream. */
  async #pull(deadline: number, what: string): Promise<boolean> {
    if (this.#done) return false;
    this.#pending ??= this.#reader.read();
    const { done, value } = await withTimeout(
      this.#pending,
      Math.max(0, deadline - Date.now()),
      `${what} on ${this.#name}; got ${JSON.stringify(this.#text)}`,
    );
    this.#pending = undefined;
    if (done) {
      this.#done = true;
      this.#text += this.#decoder.decode();
      return false;
    }
    this.#text += this.#decoder.decode(value, { stream: true });
    return true;
  }

  /**
   * Reads until the text not yet matched by an earlier call matches
   * `pattern`, and returns the match. Throws at the end of the stream or
   * after `timeout` ms.
   */
  async readUntil(pattern: RegExp, timeout: number = TIMEOUT): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeout;
    const what = `a match for ${pattern}`;
    while (true) {
      const unread = this.#text.slice(this.#consumed);
      const found = pattern.exec(unread);
      if (found) {
        this.#consumed += found.index + found[0].length;
        return found;
      }
      if (!await this.#pull(deadline, what)) {
        throw new Error(
          `${this.#name} ended before ${what}; got ${JSON.stringify(this.#text)}`,
        );
      }
    }
  }

  /** Reads to the end of the stream and returns everything read. */
  async readAll(timeout: number = TIMEOUT): Promise<string> {
    const deadline = Date.now() + timeout;
    while (await this.#pull(deadline, "the end of the output")) {
      // Keep reading.
    }
    return this.#text;
  }

  /** Stops reading and releases the pipe. */
  async cancel(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    await this.#reader.cancel().catch(() => {});
    await this.#pending?.catch(() => {});
  }
}

/** How a `chat` process ended, and everything it printed. */
export interface ChatResult {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

/** Options for {@linkcode spawnChat}. */
export interface SpawnChatOptions {
  /**
   * `"piped"` to write to the process's stdin with
   * {@linkcode ChatProcess.write}.
   *
   * @default {"null"}
   */
  stdin?: "piped" | "null";
}

/** A running `chat` process. Disposing it kills it if needed and frees every pipe. */
export class ChatProcess implements AsyncDisposable {
  readonly stdout: OutputReader;
  readonly stderr: OutputReader;
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #stdinClosed = false;
  #status: Deno.CommandStatus | undefined;
  readonly #exited: Promise<Deno.CommandStatus>;

  constructor(child: Deno.ChildProcess, stdin: boolean) {
    this.#child = child;
    this.#stdin = stdin ? child.stdin.getWriter() : undefined;
    this.stdout = new OutputReader(child.stdout, "stdout");
    this.stderr = new OutputReader(child.stderr, "stderr");
    this.#exited = child.status.then((status) => this.#status = status);
  }

  /** Writes text to stdin. */
  async write(text: string): Promise<void> {
    if (this.#stdin === undefined) throw new Error("stdin is not piped");
    await this.#stdin.write(encoder.encode(text));
  }

  /** Closes stdin: the end of input, like Ctrl-D. */
  async closeStdin(): Promise<void> {
    if (this.#stdin === undefined || this.#stdinClosed) return;
    this.#stdinClosed = true;
    await this.#stdin.close().catch(() => {
      // The process exited before reading everything; its status says more.
    });
  }

  /** Sends a signal, unless the process has already exited. */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    if (this.#status !== undefined) return;
    try {
      this.#child.kill(signal);
    } catch {
      // It exited in the meantime.
    }
  }

  /**
   * Closes stdin, reads stdout and stderr to their end and waits for the
   * process to exit.
   */
  async exit(timeout: number = TIMEOUT): Promise<ChatResult> {
    await this.closeStdin();
    const [stdout, stderr, status] = await Promise.all([
      this.stdout.readAll(timeout),
      this.stderr.readAll(timeout),
      withTimeout(this.#exited, timeout, "the process to exit"),
    ]);
    return { code: status.code, signal: status.signal, stdout, stderr };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.kill("SIGKILL");
    await this.closeStdin();
    await Promise.all([this.stdout.cancel(), this.stderr.cancel()]);
    await this.#exited;
  }
}

/**
 * Starts `chat` with arguments, the way `deno task chat` does.
 *
 * @example
 * ```ts ignore
 * await using server = spawnChat(["serve", "--port", "0"]);
 * const [, port] = await server.stdout.readUntil(/listening on \S+:(\d+)/);
 * ```
 */
export function spawnChat(args: string[], options: SpawnChatOptions = {}): ChatProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-q", "-P=chat", "--no-prompt", MAIN, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", XDG_CONFIG_HOME: `${HOME}/config`, XDG_DATA_HOME: `${HOME}/data` },
    stdin: options.stdin ?? "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return new ChatProcess(child, options.stdin === "piped");
}

/** Runs `chat` to its end, with `stdin` as its whole input when given. */
export async function runChat(args: string[], stdin?: string): Promise<ChatResult> {
  await using chat = spawnChat(args, { stdin: stdin === undefined ? "null" : "piped" });
  if (stdin !== undefined) {
    await chat.write(stdin).catch(() => {
      // The process exited without reading its input; its status says more.
    });
  }
  return await chat.exit();
}

/** Starts `chat serve` on a free loopback port and reads the port it prints. */
export async function startServer(
  ...args: string[]
): Promise<{ server: ChatProcess; port: number }> {
  const server = spawnChat([
    "serve",
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--data",
    ":memory:",
    ...args,
  ]);
  try {
    const [, version, port] = await server.stdout.readUntil(
      /^chat (\S+) listening on 127\.0\.0\.1:(\d+)$/m,
    );
    equal(version, denoConfig.version);
    return { server, port: Number(port) };
  } catch (error) {
    await server[Symbol.asyncDispose]();
    throw error;
  }
}

/**
 * Stops a server the way Ctrl-C or a service manager does. Windows has no
 * SIGTERM to catch, so there the process is only ended.
 */
export async function stopServer(server: ChatProcess): Promise<void> {
  if (Deno.build.os === "windows") return await server[Symbol.asyncDispose]();
  server.kill("SIGTERM");
  const { code, stdout, stderr } = await server.exit();
  equal(code, 0, stderr);
  match(stdout, /Server stopped/);
  ok(!STACK_TRACE.test(stderr), stderr);
}

/**
 * Asserts the program exited with `exitCode` and printed exactly one line on
 * stderr, matching `pattern`, with no stack trace.
 */
export function assertOneErrorLine(result: ChatResult, pattern: RegExp, exitCode = 1): void {
  equal(result.code, exitCode, `stderr: ${result.stderr}`);
  const lines = result.stderr.trimEnd().split("\n");
  equal(lines.length, 1, `stderr: ${JSON.stringify(result.stderr)}`);
  match(lines[0] ?? "", pattern);
  ok(!STACK_TRACE.test(result.stderr), `stack trace on stderr: ${result.stderr}`);
}
