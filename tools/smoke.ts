/**
 * Smoke-tests a compiled `chat` binary the way a user first runs it.
 *
 * ```sh
 * deno run -A tools/smoke.ts dist/chat-x86_64-unknown-linux-gnu
 * deno run -A tools/smoke.ts deno run -q -P=chat main.ts   # the same checks without compiling
 * ```
 *
 * It checks `--version`, `--help` and a bad flag, starts `serve` on a free
 * loopback port, talks to it with `connect` (stdin piped) and `send`, checks
 * that a refused connection fails cleanly, and stops the server. Every step
 * has a time limit. Prints one PASS/FAIL/SKIP line per check and a closing
 * count; exits 1 if any check failed, 2 on bad usage.
 *
 * @module
 */

import { resolve } from "node:path";
import config from "../deno.json" with { type: "json" };

const RUN_TIMEOUT_MS = 20_000;
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;
const TOTAL_TIMEOUT_MS = 180_000;
const STACK_TRACE = /^\s+at .+[:(]/m;

interface RunResult {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

interface RunOptions {
  stdin?: string;
  timeoutMs?: number;
}

/** The command under test: a binary, plus leading arguments when it is `deno run ...`. */
interface Program {
  path: string;
  prefix: string[];
}

type Outcome = "PASS" | "FAIL" | "SKIP";

const counts: Record<Outcome, number> = { PASS: 0, FAIL: 0, SKIP: 0 };

function report(outcome: Outcome, name: string, detail = ""): void {
  counts[outcome]++;
  console.log(`${outcome}  ${name}${detail ? ` (${detail})` : ""}`);
}

function check(name: string, ok: boolean, detail: string): void {
  report(ok ? "PASS" : "FAIL", name, ok ? "" : detail);
}

function describe(result: RunResult): string {
  if (result.timedOut) return `no exit within ${RUN_TIMEOUT_MS / 1000} s`;
  const status = result.signal ? `signal ${result.signal}` : `exit code ${result.code}`;
  const output = (result.stderr.trim() || result.stdout.trim()).split("\n").slice(0, 3).join(" | ");
  return output ? `${status}: ${output}` : status;
}

const decoder = new TextDecoder();

/** Runs the binary to completion, killing it when it outlives `timeoutMs`. */
async function run(
  program: Program,
  args: string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const child = new Deno.Command(program.path, {
    args: [...program.prefix, ...args],
    env: { NO_COLOR: "1" },
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
  }, options.timeoutMs ?? RUN_TIMEOUT_MS);
  try {
    if (options.stdin !== undefined) {
      const writer = child.stdin.getWriter();
      try {
        await writer.write(new TextEncoder().encode(options.stdin));
        await writer.close();
      } catch {
        // The child closed its stdin early; its exit status tells the rest.
      }
    }
    const output = await child.output();
    return {
      code: output.code,
      signal: output.signal,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
      timedOut,
    };
  } finally {
    clearTimeout(timer);
  }
}

/** A running `chat serve` whose output is collected as it arrives. */
class Server {
  readonly #child: Deno.ChildProcess;
  readonly #drained: Promise<unknown>;
  #output = "";
  #status: Deno.CommandStatus | undefined;

  constructor(program: Program, port: number) {
    this.#child = new Deno.Command(program.path, {
      args: [...program.prefix, "serve", "--host", "127.0.0.1", "--port", String(port)],
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child.status.then((status) => this.#status = status);
    this.#drained = Promise.all([
      this.#collect(this.#child.stdout),
      this.#collect(this.#child.stderr),
    ]);
  }

  get output(): string {
    return this.#output;
  }

  get exited(): Deno.CommandStatus | undefined {
    return this.#status;
  }

  async #collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    const textDecoder = new TextDecoder();
    for await (const chunk of stream) this.#output += textDecoder.decode(chunk, { stream: true });
  }

  /** Sends SIGTERM (a hard stop on Windows) and waits; falls back to SIGKILL. */
  async stop(timeoutMs: number): Promise<Deno.CommandStatus | undefined> {
    if (this.#status) return this.#status;
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    const status = await withTimeout(this.#child.status, timeoutMs);
    if (status === undefined) {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await this.#child.status;
    }
    await withTimeout(this.#drained, 1_000);
    return status;
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Finds a port that is free right now by binding port 0 and letting it go. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Polls until `port` accepts a TCP connection; false if the server died or time ran out. */
async function waitForPort(server: Server, port: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && server.exited === undefined) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return true;
    } catch {
      await delay(100);
    }
  }
  return false;
}

async function waitForText(server: Server, text: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!server.output.includes(text)) {
    if (Date.now() >= deadline || server.exited) return server.output.includes(text);
    await delay(50);
  }
  return true;
}

async function smoke(bin: Program): Promise<void> {
  const version = config.version;

  const versionRun = await run(bin, ["--version"]);
  check(
    `--version prints "${version}"`,
    versionRun.code === 0 && !versionRun.timedOut && versionRun.stdout.includes(version),
    describe(versionRun),
  );

  const helpRun = await run(bin, ["--help"]);
  check(
    "--help lists serve and connect",
    helpRun.code === 0 && /\bserve\b/.test(helpRun.stdout) && /\bconnect\b/.test(helpRun.stdout),
    describe(helpRun),
  );
  const hasSend = /\bsend\b/.test(helpRun.stdout);

  const bogusRun = await run(bin, ["--bogus-flag"]);
  check(
    "--bogus-flag fails with a message and no stack trace",
    bogusRun.code !== 0 && !bogusRun.timedOut && bogusRun.stderr.trim() !== "" &&
      !STACK_TRACE.test(bogusRun.stderr),
    describe(bogusRun),
  );

  const port = freePort();
  const address = `127.0.0.1:${port}`;
  const server = new Server(bin, port);
  try {
    const listening = await waitForPort(server, port, START_TIMEOUT_MS);
    check(
      `serve accepts connections on ${address}`,
      listening,
      server.exited
        ? `exited with code ${server.exited.code}: ${server.output.trim().split("\n")[0] ?? ""}`
        : `nothing listening after ${START_TIMEOUT_MS / 1000} s`,
    );
    if (listening) {
      check(
        "serve prints its listening address",
        await waitForText(server, `:${port}`, 5_000),
        `output so far: ${JSON.stringify(server.output.slice(0, 200))}`,
      );

      const connectRun = await run(bin, ["connect", address, "--name", "smoke"], {
        stdin: "hello\n",
      });
      check(
        "connect sends piped stdin and exits 0 at end of input",
        connectRun.code === 0 && !connectRun.timedOut,
        describe(connectRun),
      );

      if (hasSend) {
        const sendRun = await run(bin, ["send", address, "--name", "smoke2", "hi"]);
        check("send delivers one message and exits 0", sendRun.code === 0, describe(sendRun));
      } else {
        report("SKIP", "send delivers one message and exits 0", "--help does not list send");
      }
    }

    const refusedRun = await run(bin, ["connect", "127.0.0.1:1", "--name", "x"]);
    check(
      "connect to a closed port fails with one line and no stack trace",
      refusedRun.code !== 0 && !refusedRun.timedOut && refusedRun.stderr.trim() !== "" &&
        !STACK_TRACE.test(refusedRun.stderr),
      describe(refusedRun),
    );

    check(
      "serve is still running after the client checks",
      server.exited === undefined,
      `exited with code ${server.exited?.code}: ${server.output.trim().split("\n").at(-1)}`,
    );
  } finally {
    const wasRunning = server.exited === undefined;
    const status = await server.stop(STOP_TIMEOUT_MS);
    if (wasRunning) {
      check(
        `serve stops on SIGTERM within ${STOP_TIMEOUT_MS / 1000} s`,
        status !== undefined,
        "killed with SIGKILL",
      );
    }
  }
}

async function main(args: string[]): Promise<number> {
  const [path, ...prefix] = args;
  if (path === undefined || path.startsWith("-")) {
    console.error("Usage: deno run -A tools/smoke.ts <path to chat binary> [leading arguments]");
    return 2;
  }
  // A bare name (`deno`) is looked up on PATH by Deno.Command; a path must exist.
  const isPath = /[\\/]/.test(path);
  const bin: Program = { path: isPath ? resolve(path) : path, prefix };
  if (isPath) {
    try {
      const info = await Deno.stat(bin.path);
      if (!info.isFile) throw new Error("not a file");
    } catch (error) {
      console.error(
        `error: Cannot smoke-test "${path}": ${error instanceof Error ? error.message : error}`,
      );
      return 2;
    }
  }

  console.log(
    `Smoke-testing ${[bin.path, ...prefix].join(" ")} (expecting version ${config.version})`,
  );
  const timer = setTimeout(() => {
    report("FAIL", `smoke test finishes within ${TOTAL_TIMEOUT_MS / 1000} s`);
    console.log(`smoke: ${counts.PASS} passed, ${counts.FAIL} failed`);
    Deno.exit(1);
  }, TOTAL_TIMEOUT_MS);
  try {
    await smoke(bin);
  } catch (error) {
    // Only a failure to start the program gets here; every check reports its own result.
    report("FAIL", `start "${path}"`, error instanceof Error ? error.message : String(error));
  } finally {
    clearTimeout(timer);
  }
  const skipped = counts.SKIP > 0 ? `, ${counts.SKIP} skipped` : "";
  console.log(`smoke: ${counts.PASS} passed, ${counts.FAIL} failed${skipped}`);
  return counts.FAIL > 0 ? 1 : 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
