/**
 * The benchmark runner (`deno task bench`). For each server under test and
 * each workload it starts the server on a free loopback port, runs
 * `load.ts` in its own process, samples the server's CPU time and memory
 * from `/proc`, and stops the server again, so every workload starts from a
 * fresh process. It prints a table and the target checks, and writes
 * `bench/results/`.
 *
 * Options:
 *
 * - `--quick`: smaller workloads, about two minutes in all
 * - `--only NAME[,NAME]`: servers whose name contains NAME (`chat`, `ncat`,
 *   `ngircd`, `naive deno`, `naive node`, `durable`, `memory`, `text`, `irc door`)
 * - `--workload NAME[,NAME]`: `burst`, `paced`, `idle`, `slow`, `crowd`
 * - `--cpu-prof DIR`: run our server with `--cpu-prof` and leave the
 *   profiles in DIR (summarise them with `profile_summary.ts`)
 * - `--chat-args="ARGS"`: more `chat serve` options, e.g. to try a limit
 *   (`--chat-args="--max-queue-bytes 8388608"`)
 * - `--cluster`: only the cluster workload (`cluster.ts`): one SQLite node
 *   beside one, two and three nodes sharing PostgreSQL
 *
 * Our server runs three ways: with durable history, with `--data :memory:`,
 * and `chat (text)`, the `:memory:` server driven through its plain-text
 * door (what `nc` users get), so the JSON and plain-text paths compare.
 *
 * Runs with a filter or `--quick` write `partial.*` instead of `latest.*`;
 * `latest.json` is read first, so paced and slow can be compared with the
 * last full run.
 *
 * @example Everything, then only our server's burst
 * ```sh
 * deno task bench
 * deno task bench --only chat --workload burst
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { Protocol, Workload } from "./_load_shard.ts";

const BENCH_DIR = new URL(".", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;
const RESULTS_DIR = `${BENCH_DIR}results/`;
const HOST = "127.0.0.1";
const DENO = Deno.execPath();
const WORKLOADS: Workload[] = ["burst", "paced", "idle", "slow", "crowd"];
/** Our server's default `maxQueuedBytes` (`--max-total-queue-bytes`). */
const DEFAULT_QUEUE_BUDGET = 64 * 1024 * 1024;
/** Burst: our server's peak RSS may pass its RSS at rest by this much, in MB. */
const BURST_RSS_GROWTH_MB = 48;
/** Idle: RSS per idle connection allowed, in KB. */
const IDLE_KB_PER_CONNECTION = 10;
/** The V8 flags the `chat` task and the compiled binary run with (deno.json). */
const V8_FLAGS = ["--v8-flags=--max-semi-space-size=4"];

/** Raises the descriptor limit as far as allowed, then runs the command. */
const ULIMIT = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"';

/** Workload sizes for one mode. */
interface Sizes {
  burstClients: number;
  burstMessages: number;
  pacedClients: number;
  rate: number;
  duration: number;
  idleConnections: number;
  burstTimeoutS: number;
  connectTimeoutS: number;
  idleConnectTimeoutS: number;
  warmUpMs: number;
  quietMs: number;
  /** Burst runs per server, each on a fresh server; the median is reported. */
  burstRepeats: number;
  /** `crowd`: slow readers besides the paced clients. */
  crowdReaders: number;
  /** `crowd`: bytes a slow reader takes at each read. */
  crowdReadBytes: number;
  /** `crowd`: ms between a slow reader's reads. */
  crowdReadEveryMs: number;
}

const FULL: Sizes = {
  burstClients: 200,
  burstMessages: 50,
  pacedClients: 100,
  rate: 20,
  duration: 10,
  idleConnections: 10_000,
  burstTimeoutS: 60,
  connectTimeoutS: 60,
  idleConnectTimeoutS: 90,
  warmUpMs: 3000,
  quietMs: 2000,
  burstRepeats: 3,
  crowdReaders: 1000,
  crowdReadBytes: 4096,
  crowdReadEveryMs: 3000,
};

const QUICK: Sizes = {
  burstClients: 100,
  burstMessages: 50,
  pacedClients: 100,
  rate: 20,
  duration: 3,
  idleConnections: 1_000,
  burstTimeoutS: 30,
  connectTimeoutS: 30,
  idleConnectTimeoutS: 15,
  warmUpMs: 1500,
  quietMs: 1000,
  burstRepeats: 1,
  crowdReaders: 250,
  crowdReadBytes: 4096,
  crowdReadEveryMs: 3000,
};

/** A server under test. */
interface Server {
  name: string;
  protocol: Protocol;
  /** Why it is not run, when it cannot be. */
  skip?: string;
  /** Options and caveats worth printing under the table. */
  notes: string[];
  /** The most connections it can hold; workloads that need more are skipped. */
  maxConnections?: number;
  /** Our server's `maxQueuedBytes`, for the crowd check. */
  queueBudget?: number;
  /** The command, given a port and a private temporary directory. */
  command(port: number, dir: string): Promise<{ args: string[]; cwd: string }>;
}

/** One server × workload measurement. */
export interface Cell {
  server: string;
  workload: Workload;
  status: "ok" | "skipped" | "failed";
  reason?: string;
  deliveries?: number;
  deliveriesPerSecond?: number | null;
  p50Ms?: number | null;
  p99Ms?: number | null;
  lost?: number;
  reordered?: number;
  duplicates?: number;
  cpuUsPer1k?: number | null;
  cpuMsMeasured?: number;
  cpuMsWhole?: number;
  peakRssMb?: number;
  rssBeforeMb?: number;
  rssHoldingMb?: number;
  rssPerIdleKb?: number | null;
  idleHeld?: number;
  idleWanted?: number;
  slowDisconnected?: boolean | null;
  /** The server's RSS once a second, from the start of the load generator. */
  rssTimelineMb?: number[];
  /** Peak RSS − RSS at rest, the most of any run. */
  rssGrowthMb?: number;
  /** `crowd`: slow readers that joined, and how many of them the server disconnected. */
  crowdJoined?: number;
  crowdDisconnected?: number;
  generatorCpuShare?: number | null;
  notes: string[];
  load?: Record<string, unknown>;
  /** Every run when the cell was measured more than once. */
  runs?: Omit<Cell, "load">[];
}

interface Check {
  target: string;
  server: string;
  ok: boolean | null;
  detail: string;
}

// ---------------------------------------------------------------- helpers

async function output(
  args: string[],
  cwd = ROOT,
): Promise<{ code: number; text: string } | undefined> {
  try {
    const out = await new Deno.Command(args[0]!, {
      args: args.slice(1),
      cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    return { code: out.code, text: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
  } catch {
    return undefined;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

function freePort(): number {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

let clockTicks = 100;

function cpuMs(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 1000 / clockTicks;
  } catch {
    return NaN;
  }
}

function memoryKb(pid: number): { rss: number; hwm: number } {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const field = (name: string) =>
      Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)?.[1]);
    return { rss: field("VmRSS"), hwm: field("VmHWM") };
  } catch {
    return { rss: NaN, hwm: NaN };
  }
}

async function accepting(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: HOST, port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

function tail(path: string, lines = 5): string {
  try {
    return Deno.readTextFileSync(path).trimEnd().split("\n").slice(-lines).join(" | ");
  } catch {
    return "";
  }
}

function round(value: number, digits = 1): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function log(line: string): void {
  console.error(line);
}

// ---------------------------------------------------------------- servers

const LIMIT_VALUES: [string, string][] = [
  ["--max-connections", "20000"],
  ["--max-connections-per-ip", "20000"],
  ["--connect-rate", "100000"],
  ["--rate-limit", "1000"],
  ["--rate-burst", "1000"],
];

/** Our server, once or twice depending on whether it keeps history on disk. */
async function chatServers(
  cpuProfDir: string | undefined,
  extra: string[],
): Promise<Server[]> {
  const base = ["run", "-q", "-P=chat", "--no-prompt"];
  const help = await output([DENO, ...base, "main.ts", "serve", "--help"]);
  if (!help || help.code !== 0) {
    return [{
      name: "chat",
      protocol: "chat",
      notes: [],
      skip: `"main.ts serve --help" failed: ${help?.text.trim().slice(0, 200) ?? "not run"}`,
      command: () => Promise.reject(new Error("skipped")),
    }];
  }
  const flags = new Set([...help.text.matchAll(/^\s*(--[a-z0-9-]+)/gm)].map((match) => match[1]!));
  const limits: string[] = [];
  for (const [flag, value] of LIMIT_VALUES) {
    if (flags.has(flag)) limits.push(flag, value);
  }
  const unknown = [...flags].filter((flag) =>
    /conn|rate|flood|burst|per-ip/.test(flag) && !LIMIT_VALUES.some(([known]) => known === flag)
  );
  const notes: string[] = [];
  if (limits.length > 0) {
    notes.push(
      `limits raised for the workloads (10,000 connections from one address, 1,000 messages/s per ` +
        `client): ${limits.join(" ")}`,
    );
  }
  if (unknown.length > 0) notes.push(`left at their defaults: ${unknown.join(" ")}`);
  if (extra.length > 0) notes.push(`extra options: ${extra.join(" ")}`);
  const budgetAt = extra.findIndex((arg) => arg.startsWith("--max-total-queue-bytes"));
  const budgetArg = budgetAt === -1
    ? undefined
    : extra[budgetAt]!.includes("=")
    ? extra[budgetAt]!.split("=")[1]
    : extra[budgetAt + 1];
  const queueBudget = Number(budgetArg) > 0 ? Number(budgetArg) : DEFAULT_QUEUE_BUDGET;
  const make = (
    name: string,
    data: ((dir: string) => string) | undefined,
    protocol: Protocol = "chat",
  ): Server => ({
    name,
    protocol,
    queueBudget,
    notes: [
      ...notes,
      ...(data ? [`--data ${data("<tmp>")}`] : []),
      ...(protocol === "text"
        ? ["the same server as chat (:memory:), driven through its plain-text door (nc users)"]
        : []),
    ],
    command: (port, dir) => {
      const prof = cpuProfDir
        ? ["--cpu-prof", `--cpu-prof-dir=${cpuProfDir}/${slug(name)}-${port}`]
        : [];
      return Promise.resolve({
        args: [
          DENO,
          "run",
          "-q",
          "-P=chat",
          "--no-prompt",
          ...V8_FLAGS,
          ...prof,
          "main.ts",
          "serve",
          "--host",
          HOST,
          "--port",
          String(port),
          ...(data ? ["--data", data(dir)] : []),
          // Clients use the chat port only; the web port would be the next one, maybe taken.
          ...(flags.has("--no-web") ? ["--no-web"] : []),
          ...limits,
          ...extra,
        ],
        cwd: ROOT,
      });
    },
  });
  // The same server, measured with IRC clients on its IRC door, beside ngircd.
  const ircBase = make("chat IRC door (:memory:)", () => ":memory:");
  const irc: Server = {
    ...ircBase,
    protocol: "irc",
    command: (port, dir) =>
      ircBase.command(freePort(), dir).then((run) => ({
        ...run,
        args: [...run.args, "--irc-port", String(port)],
      })),
  };
  if (!flags.has("--irc-port")) irc.skip = "this chat has no --irc-port";
  // The same server, its clients on WebSockets: the harness's port is the web port.
  const web = (server: Server): Server => ({
    ...server,
    name: "chat (WebSocket)",
    protocol: "ws",
    notes: [...server.notes, "clients on WebSockets (--web-port); no slow consumer"],
    command: async (port, dir) => {
      const command = await server.command(freePort(), dir);
      const args = command.args.filter((arg) => arg !== "--no-web");
      return { ...command, args: [...args, "--web-port", String(port)] };
    },
  });
  if (flags.has("--data")) {
    const memory = make("chat (:memory:)", () => ":memory:");
    return [
      make("chat (durable)", (dir) => `${dir}/bench.db`),
      memory,
      make("chat (text)", () => ":memory:", "text"),
      irc,
      ...(flags.has("--web-port") ? [web(memory)] : []),
    ];
  }
  return [make("chat", undefined), make("chat (text)", undefined, "text"), irc];
}

async function ncatServer(): Promise<Server> {
  const version = await output(["ncat", "--version"]);
  const server: Server = {
    name: "ncat",
    protocol: "lines",
    notes: ["ncat --chat --max-conns 20000 (its default is 100)"],
    // Its select() loop ends the process at descriptor 1,024 (see idle).
    maxConnections: 1000,
    command: (port) =>
      Promise.resolve({
        args: ["ncat", "--chat", "-l", HOST, String(port), "--max-conns", "20000"],
        cwd: ROOT,
      }),
  };
  if (!version || !/Ncat/i.test(version.text)) {
    server.skip = "ncat is not installed (Debian package ncat)";
  }
  return server;
}

function ngircdConfig(port: number, dir: string): string {
  return `[Global]
\tName = bench.irc
\tInfo = chat benchmark
\tAdminInfo1 = benchmark
\tAdminInfo2 = benchmark
\tAdminEMail = bench@localhost
\tListen = ${HOST}
\tPorts = ${port}
\tPidFile = ${dir}/ngircd.pid
\tMotdFile = ${dir}/motd
[Limits]
\tMaxConnections = 0
\tMaxConnectionsIP = 0
\tMaxJoins = 0
\tMaxPenaltyTime = 0
\tPingTimeout = 600
\tPongTimeout = 600
[Options]
\tDNS = no
\tIdent = no
\tPAM = no
`;
}

async function writeNgircdConfig(port: number, dir: string): Promise<string> {
  // Started as root, ngircd runs as "nobody" and writes its PID file then.
  await Deno.chmod(dir, 0o777);
  await Deno.writeTextFile(`${dir}/motd`, "chat benchmark\n");
  const path = `${dir}/ngircd.conf`;
  await Deno.writeTextFile(path, ngircdConfig(port, dir));
  return path;
}

async function ngircdServer(): Promise<Server> {
  const server: Server = {
    name: "ngircd",
    protocol: "irc",
    notes: [
      "ngircd -n -p with MaxConnections 0, MaxConnectionsIP 0, MaxJoins 0, MaxPenaltyTime 0 " +
      "(flood penalty off), DNS and Ident off",
      "idle connections register (NICK/USER until 001) but do not join the channel",
    ],
    command: async (port, dir) => ({
      args: ["ngircd", "-n", "-p", "-f", await writeNgircdConfig(port, dir)],
      cwd: dir,
    }),
  };
  const version = await output(["ngircd", "--version"]);
  if (!version) {
    server.skip = "ngircd is not installed (Debian package ngircd)";
    return server;
  }
  const dir = await Deno.makeTempDir({ prefix: "chat-bench-ngircd-" });
  try {
    const config = await writeNgircdConfig(freePort(), dir);
    const test = await output(["ngircd", "--configtest", "-f", config], dir);
    if (!test || test.code !== 0) {
      server.skip = `ngircd refused the configuration: ${test?.text.trim().slice(-200)}`;
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  return server;
}

async function naiveServers(): Promise<Server[]> {
  const node = await output(["node", "--version"]);
  return [
    {
      name: "naive deno",
      protocol: "lines",
      notes: [],
      command: (port) =>
        Promise.resolve({
          args: [DENO, "run", "-A", `${BENCH_DIR}naive_deno_relay.ts`, String(port)],
          cwd: ROOT,
        }),
    },
    {
      name: "naive node",
      protocol: "lines",
      notes: [],
      skip: node && node.code === 0 ? undefined : "node is not installed",
      command: (port) =>
        Promise.resolve({
          args: ["node", `${BENCH_DIR}naive_node_relay.mjs`, String(port)],
          cwd: ROOT,
        }),
    },
  ];
}

function slug(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
}

// ---------------------------------------------------------------- one cell

interface Running {
  child: Deno.ChildProcess;
  pid: number;
  log: string;
  exited: boolean;
  code: number | null;
}

async function startServer(
  server: Server,
  dir: string,
): Promise<{ running: Running; port: number }> {
  const port = freePort();
  const { args, cwd } = await server.command(port, dir);
  const log = `${dir}/server.log`;
  const child = new Deno.Command("sh", {
    args: ["-c", `${ULIMIT}; exec "$@" >"$BENCH_LOG" 2>&1`, "sh", ...args],
    cwd,
    env: { BENCH_LOG: log, NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const running: Running = { child, pid: child.pid, log, exited: false, code: null };
  child.status.then((status) => {
    running.exited = true;
    running.code = status.code;
  });
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (running.exited) {
      throw new Error(`exited with code ${running.code} before accepting: ${tail(log)}`);
    }
    if (await accepting(port)) return { running, port };
    await sleep(50);
  }
  await stopServer(running);
  throw new Error(`did not accept connections within 20 s: ${tail(log)}`);
}

async function stopServer(running: Running): Promise<void> {
  if (running.exited) return;
  try {
    running.child.kill("SIGTERM");
  } catch {
    // Already gone.
  }
  const deadline = Date.now() + 8000;
  while (!running.exited && Date.now() < deadline) await sleep(50);
  if (!running.exited) {
    try {
      running.child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await running.child.status.catch(() => {});
  }
}

function loadArgs(server: Server, workload: Workload, port: number, sizes: Sizes): string[] {
  const args = [
    "--protocol",
    server.protocol,
    "--port",
    String(port),
    "--workload",
    workload,
    "--connect-timeout",
    String(workload === "idle" ? sizes.idleConnectTimeoutS : sizes.connectTimeoutS),
    "--quiet-ms",
    String(sizes.quietMs),
    "--warm-up-ms",
    String(sizes.warmUpMs),
  ];
  switch (workload) {
    case "burst":
      args.push(
        "--clients",
        String(sizes.burstClients),
        "--messages",
        String(sizes.burstMessages),
        "--timeout",
        String(sizes.burstTimeoutS),
      );
      break;
    case "paced":
    case "slow":
    case "crowd":
      args.push(
        "--clients",
        String(sizes.pacedClients),
        "--rate",
        String(sizes.rate),
        "--duration",
        String(sizes.duration),
        "--timeout",
        "20",
      );
      if (workload === "crowd") {
        args.push(
          "--crowd",
          String(sizes.crowdReaders),
          "--crowd-read-bytes",
          String(sizes.crowdReadBytes),
          "--crowd-read-every-ms",
          String(sizes.crowdReadEveryMs),
        );
      }
      break;
    case "idle":
      args.push("--connections", String(sizes.idleConnections), "--hold", "60");
      break;
  }
  return args;
}

async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void | Promise<void>,
): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    let newline = pending.indexOf("\n");
    while (newline !== -1) {
      await onLine(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
      newline = pending.indexOf("\n");
    }
  }
  if (pending) await onLine(pending);
}

/**
 * Has the server serve two clients a few messages before its RSS at rest is
 * read, so that what one client costs once per process (code paged in and
 * compiled on first use) is not counted against the workload.
 */
async function serveOnce(server: Server, port: number): Promise<void> {
  const args = [
    "--protocol",
    server.protocol,
    "--port",
    String(port),
    "--workload",
    "burst",
    "--clients",
    "2",
    "--messages",
    "5",
    "--timeout",
    "10",
    "--quiet-ms",
    "300",
  ];
  const output = await new Deno.Command(DENO, {
    args: ["run", "-A", `${BENCH_DIR}load.ts`, ...args],
    cwd: ROOT,
    stdout: "null",
    stderr: "null",
  }).output();
  if (!output.success) log(`    the warm-up client exited with code ${output.code}`);
}

async function runCell(server: Server, workload: Workload, sizes: Sizes): Promise<Cell> {
  const cell: Cell = { server: server.name, workload, status: "ok", notes: [] };
  if (server.skip) return { ...cell, status: "skipped", reason: server.skip };
  const needs = workload === "crowd" ? sizes.pacedClients + sizes.crowdReaders : 0;
  if (server.maxConnections !== undefined && needs > server.maxConnections) {
    return {
      ...cell,
      status: "skipped",
      reason: `needs ${fmtInt(needs)} connections; it holds at most ${
        fmtInt(server.maxConnections)
      }`,
    };
  }
  const dir = await Deno.makeTempDir({ prefix: `chat-bench-${slug(server.name)}-` });
  let running: Running | undefined;
  try {
    const started = await startServer(server, dir);
    running = started.running;
    const pid = running.pid;
    await sleep(300);
    await serveOnce(server, started.port);
    await sleep(300);
    const before = { cpu: cpuMs(pid), memory: memoryKb(pid) };
    // The last reading that worked, in case the server dies before the end.
    let lastMemory = before.memory;
    let samples = 0;
    const timeline: number[] = [];
    const sampler = setInterval(() => {
      const now = memoryKb(pid);
      if (Number.isFinite(now.hwm)) lastMemory = now;
      if (samples++ % 4 === 0 && Number.isFinite(now.rss)) timeline.push(round(now.rss / 1024, 1));
    }, 250);
    let atStart = NaN;
    let atEnd = NaN;
    let holding: { rss: number; held: number } | undefined;
    // The last reading taken while connections were verified held, in case the server dies.
    let ramp: { rss: number; held: number } | undefined;
    const args = loadArgs(server, workload, started.port, sizes);
    const load = new Deno.Command("sh", {
      args: ["-c", `${ULIMIT}; exec "$@"`, "sh", DENO, "run", "-A", `${BENCH_DIR}load.ts`, ...args],
      cwd: ROOT,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stdin = load.stdin.getWriter();
    const errors: string[] = [];
    let stdout = "";
    const limitMs = (sizes.idleConnectTimeoutS + sizes.burstTimeoutS + sizes.duration + 120) *
      1000;
    const killer = setTimeout(() => {
      errors.push(`load generator killed after ${limitMs / 1000} s`);
      try {
        load.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }, limitMs);
    const reading = Promise.all([
      readLines(load.stdout, (line) => {
        stdout += line + "\n";
      }),
      readLines(load.stderr, async (line) => {
        if (!line.startsWith("@event ")) {
          if (line.trim()) errors.push(line.trim());
          return;
        }
        const event = JSON.parse(line.slice(7)) as Record<string, unknown>;
        if (event.event === "start") atStart = cpuMs(pid);
        else if (event.event === "end") atEnd = cpuMs(pid);
        else if (event.event === "holding") {
          // Give the server a moment to settle after the connection storm.
          await sleep(3000);
          holding = { rss: memoryKb(pid).rss, held: Number(event.held) };
          await stdin.write(new TextEncoder().encode("release\n")).catch(() => {});
        } else if (event.event === "progress" && workload === "idle") {
          const held = Number(event.held ?? (server.protocol === "lines" ? NaN : event.open));
          const rss = memoryKb(pid).rss;
          if (held > 0 && Number.isFinite(rss)) ramp = { rss, held };
          if (event.held === undefined) log(`    ${Number(event.connected)} connected`);
        }
      }),
    ]);
    const status = await load.status;
    await reading;
    clearTimeout(killer);
    clearInterval(sampler);
    await stdin.close().catch(() => {});
    const now = memoryKb(pid);
    const after = { cpu: cpuMs(pid), memory: Number.isFinite(now.hwm) ? now : lastMemory };
    const lastLine = stdout.trim().split("\n").at(-1) ?? "";
    let result: Record<string, unknown> | undefined;
    try {
      result = JSON.parse(lastLine);
    } catch {
      result = undefined;
    }
    if (running.exited) {
      cell.notes.push(
        `server exited with code ${running.code} during the run: ${tail(running.log, 3)}`,
      );
    }
    if (!result || result.ok !== true) {
      cell.status = "failed";
      cell.reason = (result?.error as string | undefined) ??
        `load generator exited with code ${status.code}: ${errors.slice(-3).join(" | ")}`;
      if (running.exited) cell.reason += `; server exited (code ${running.code})`;
      cell.load = result;
      return cell;
    }
    cell.load = result;
    cell.notes.push(...(result.notes as string[] ?? []));
    if (errors.length > 0) cell.notes.push(`generator said: ${errors.slice(-2).join(" | ")}`);
    cell.peakRssMb = round(after.memory.hwm / 1024, 1);
    cell.rssBeforeMb = round(before.memory.rss / 1024, 1);
    cell.rssGrowthMb = round((after.memory.hwm - before.memory.rss) / 1024, 1);
    cell.rssTimelineMb = timeline;
    cell.cpuMsWhole = round(after.cpu - before.cpu, 0);
    if (workload === "idle") {
      let held = Number(result.held);
      const peak = Number(result.peakHeld ?? held);
      if (peak > held) {
        cell.notes.push(
          running.exited
            ? `${fmtInt(peak)} connections were held before the server exited`
            : `${fmtInt(peak)} connections were held at one point, ${fmtInt(held)} at the end`,
        );
        held = peak;
      }
      cell.idleHeld = held;
      cell.idleWanted = Number(result.connections);
      if (holding && held > 0 && Number.isFinite(holding.rss)) {
        cell.rssHoldingMb = round(holding.rss / 1024, 1);
        cell.rssPerIdleKb = round((holding.rss - before.memory.rss) / held, 2);
      } else if (ramp) {
        cell.rssHoldingMb = round(ramp.rss / 1024, 1);
        cell.rssPerIdleKb = round((ramp.rss - before.memory.rss) / ramp.held, 2);
        cell.notes.push(`RSS per connection measured at ${fmtInt(ramp.held)} connections`);
      } else {
        cell.rssPerIdleKb = null;
      }
      if (Number(result.heldAtRelease) < held) {
        cell.notes.push(`${held - Number(result.heldAtRelease)} dropped while being held`);
      }
    } else {
      const deliveries = Number(result.deliveries);
      cell.deliveries = deliveries;
      cell.deliveriesPerSecond = result.deliveriesPerSecond as number | null;
      cell.p50Ms = result.p50Ms as number | null;
      cell.p99Ms = result.p99Ms as number | null;
      cell.lost = Number(result.lost);
      cell.reordered = Number(result.reordered);
      cell.duplicates = Number(result.duplicates);
      const measured = atEnd - atStart;
      cell.cpuMsMeasured = round(measured, 0);
      cell.cpuUsPer1k = deliveries > 0 && Number.isFinite(measured)
        ? round(measured * 1000 / deliveries * 1000, 0)
        : null;
      const generatorMs = Number(result.generatorCpuMs);
      const windowMs = Number(result.measureMs);
      cell.generatorCpuShare = windowMs > 0 ? round(generatorMs / windowMs, 2) : null;
      const cores = navigator.hardwareConcurrency;
      if (
        workload === "burst" && cell.generatorCpuShare !== null &&
        cell.generatorCpuShare >= 0.7 * cores
      ) {
        cell.notes.push(
          `the load generator used ${cell.generatorCpuShare.toFixed(2)} of ${cores} cores: ` +
            `deliveries/s is a lower bound for this server`,
        );
      }
      if (workload === "slow") {
        const slow = result.slowClient as { disconnectedByServer?: boolean } | undefined;
        cell.slowDisconnected = slow?.disconnectedByServer ?? null;
      }
      if (workload === "crowd") {
        const crowd = result.crowd as
          | {
            readers: number;
            joined: number;
            disconnectedByServer: number;
            disconnectedBeforeStart: number | null;
            kernelBytesAtEnd: number | null;
          }
          | undefined;
        cell.crowdJoined = crowd?.joined;
        cell.crowdDisconnected = crowd?.disconnectedByServer;
        if (crowd) {
          cell.notes.push(
            `${fmtInt(crowd.disconnectedByServer)} of ${
              fmtInt(crowd.joined)
            } slow readers disconnected by the server` +
              (crowd.disconnectedBeforeStart
                ? ` (${fmtInt(crowd.disconnectedBeforeStart)} during the warm-up)`
                : "") +
              (crowd.joined < crowd.readers ? ` (${fmtInt(crowd.readers)} tried to join)` : "") +
              (crowd.kernelBytesAtEnd != null
                ? `; ${
                  (crowd.kernelBytesAtEnd / 1e6).toFixed(0)
                } MB waiting for them in kernel buffers at the end`
                : ""),
          );
        }
      }
      if (Number(result.duplicates) > 0) cell.notes.push(`${result.duplicates} duplicates`);
      if (cell.lost > 0) {
        const expected = Number(result.expected);
        cell.notes.push(
          `delivered ${fmtInt(deliveries)} of ${fmtInt(expected)} (${
            (deliveries / expected * 100).toFixed(1)
          }%); deliveries/s counts only until the last one`,
        );
      }
      if (workload !== "burst" && Number(result.sendRate) < sizes.rate * 0.95) {
        cell.notes.push(
          `clients managed ${result.sendRate} msgs/s each of ${sizes.rate}: sends blocked`,
        );
      }
    }
    return cell;
  } catch (error) {
    cell.status = "failed";
    cell.reason = error instanceof Error ? error.message : String(error);
    return cell;
  } finally {
    if (running) await stopServer(running);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Of several runs of one cell, the run with the median deliveries/s, with
 * the median CPU per delivery, the highest peak RSS and every run's
 * deliveries/s in a note.
 */
function median(runs: Cell[]): Cell {
  if (runs.length > 1 && runs[0]!.workload === "idle") return medianIdle(runs);
  const ok = runs.filter((run) => run.status === "ok" && run.deliveriesPerSecond != null);
  if (ok.length === 0) return runs[0]!;
  if (runs.length === 1) return runs[0]!;
  const byRate = [...ok].sort((a, b) => a.deliveriesPerSecond! - b.deliveriesPerSecond!);
  const chosen: Cell = { ...byRate[Math.floor((byRate.length - 1) / 2)]! };
  const cpu = ok.map((run) => run.cpuUsPer1k).filter((value): value is number => value != null)
    .sort((a, b) => a - b);
  if (cpu.length > 0) chosen.cpuUsPer1k = cpu[Math.floor((cpu.length - 1) / 2)]!;
  chosen.peakRssMb = Math.max(...ok.map((run) => run.peakRssMb ?? 0));
  chosen.rssGrowthMb = Math.max(...ok.map((run) => run.rssGrowthMb ?? 0));
  const failed = runs.length - ok.length;
  chosen.notes = [
    `median of ${ok.length} runs${failed > 0 ? ` (${failed} failed)` : ""}: ${
      ok.map((run) => `${fmtRate(run.deliveriesPerSecond)}/s`).join(", ")
    }; CPU µs/1k ${ok.map((run) => fmtInt(run.cpuUsPer1k)).join(", ")}`,
    ...chosen.notes,
  ];
  chosen.runs = runs.map(({ load: _load, ...rest }) => rest);
  return chosen;
}

/**
 * Of several idle runs, the one with the median RSS per connection (what the
 * collector has not yet taken back moves it by about a kilobyte between
 * runs), with every run's figure in a note.
 */
function medianIdle(runs: Cell[]): Cell {
  const ok = runs.filter((run) => run.status === "ok" && run.rssPerIdleKb != null);
  if (ok.length === 0) return runs[0]!;
  const sorted = [...ok].sort((a, b) => a.rssPerIdleKb! - b.rssPerIdleKb!);
  const chosen: Cell = { ...sorted[Math.floor((sorted.length - 1) / 2)]! };
  const failed = runs.length - ok.length;
  chosen.notes = [
    `median of ${ok.length} runs${failed > 0 ? ` (${failed} failed)` : ""}: ${
      ok.map((run) => `${run.rssPerIdleKb!.toFixed(1)} KB`).join(", ")
    } per connection`,
    ...chosen.notes,
  ];
  chosen.runs = runs.map(({ load: _load, ...rest }) => rest);
  return chosen;
}

// ---------------------------------------------------------------- report

function fmtRate(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)} M`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(0)} k`;
  return String(Math.round(value));
}

function fmtMs(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function fmtInt(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  return new Intl.NumberFormat("en-US").format(Math.round(value));
}

const HEADERS = [
  "server",
  "workload",
  "deliveries/s",
  "p50 ms",
  "p99 ms",
  "lost",
  "reordered",
  "CPU µs/1k deliveries",
  "peak RSS MB",
  "RSS/idle conn KB",
  "idle held",
];

function rows(cells: Cell[]): { rows: string[][]; notes: string[] } {
  const notes: string[] = [];
  const out = cells.map((cell) => {
    const mark = (text: string) => {
      notes.push(`${cell.server} ${cell.workload}: ${text}`);
      return `[${notes.length}]`;
    };
    if (cell.status !== "ok") {
      const marker = mark(`${cell.status}: ${cell.reason}`);
      return [
        cell.server,
        cell.workload,
        `${cell.status} ${marker}`,
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
      ];
    }
    const marker = cell.notes.length > 0 ? " " + mark(cell.notes.join("; ")) : "";
    const idle = cell.workload === "idle";
    return [
      cell.server,
      cell.workload + marker,
      idle ? "" : fmtRate(cell.deliveriesPerSecond),
      idle ? "" : fmtMs(cell.p50Ms),
      idle ? "" : fmtMs(cell.p99Ms),
      idle ? "" : fmtInt(cell.lost),
      idle ? "" : fmtInt(cell.reordered),
      idle ? "" : fmtInt(cell.cpuUsPer1k),
      cell.peakRssMb === undefined ? "—" : cell.peakRssMb.toFixed(1),
      idle ? (cell.rssPerIdleKb === null ? "—" : cell.rssPerIdleKb!.toFixed(1)) : "",
      idle ? `${fmtInt(cell.idleHeld)} / ${fmtInt(cell.idleWanted)}` : "",
    ];
  });
  return { rows: out, notes };
}

function textTable(table: string[][]): string {
  const all = [HEADERS, ...table];
  const widths = HEADERS.map((_, i) => Math.max(...all.map((row) => [...(row[i] ?? "")].length)));
  const line = (row: string[]) =>
    row.map((value, i) => i < 2 ? value.padEnd(widths[i]!) : value.padStart(widths[i]!))
      .join("  ").trimEnd();
  return [line(HEADERS), widths.map((w) => "-".repeat(w)).join("  "), ...table.map(line)].join(
    "\n",
  );
}

function markdownTable(table: string[][]): string {
  const escape = (value: string) => value.replaceAll("|", "\\|");
  return [
    `| ${HEADERS.join(" | ")} |`,
    `|${HEADERS.map((_, i) => i < 2 ? "---" : "---:").join("|")}|`,
    ...table.map((row) => `| ${row.map(escape).join(" | ")} |`),
  ].join("\n");
}

/** The last full run's results, read before this run writes its own. */
interface Previous {
  date: string;
  sizes: Partial<Sizes>;
  cells: Cell[];
}

async function readPrevious(): Promise<Previous | undefined> {
  try {
    const json = JSON.parse(await Deno.readTextFile(`${RESULTS_DIR}latest.json`));
    if (!Array.isArray(json.cells)) return undefined;
    return {
      date: String(json.date ?? "").slice(0, 10),
      sizes: json.sizes ?? {},
      cells: json.cells,
    };
  } catch {
    return undefined;
  }
}

/** A p99 that may pass `base`: by 20%, or by 2 ms when `base` is under 5 ms (timer noise). */
function p99Limit(base: number): { limit: number; why: string } {
  return base < 5
    ? { limit: Math.max(base * 1.2, base + 2), why: "under 5 ms, so + 2 ms" }
    : { limit: base * 1.2, why: "+ 20%" };
}

/**
 * The crowd check's bound on our server's RSS: at rest, plus the whole
 * queue budget, plus a margin of the burst allowance (the working memory a
 * fan-out may take beyond what is queued) and the idle allowance for each
 * connection.
 */
function crowdRssLimit(
  server: Server,
  cell: Cell,
  sizes: Sizes,
): { limitMb: number; detail: string } {
  const budgetMb = (server.queueBudget ?? DEFAULT_QUEUE_BUDGET) / 1e6;
  const connections = sizes.pacedClients + sizes.crowdReaders;
  const connectionsMb = connections * IDLE_KB_PER_CONNECTION / 1024;
  const rest = cell.rssBeforeMb ?? 0;
  const limitMb = rest + budgetMb + BURST_RSS_GROWTH_MB + connectionsMb;
  return {
    limitMb,
    detail:
      `rest ${rest} MB + queue budget ${budgetMb.toFixed(1)} MB + ${BURST_RSS_GROWTH_MB} MB ` +
      `(burst allowance) + ${fmtInt(connections)} connections × ${IDLE_KB_PER_CONNECTION} KB ` +
      `(${connectionsMb.toFixed(1)} MB) = ${limitMb.toFixed(1)} MB`,
  };
}

function checks(
  cells: Cell[],
  servers: Server[],
  sizes: Sizes,
  previous: Previous | undefined,
): Check[] {
  const find = (server: string, workload: Workload) =>
    cells.find((cell) =>
      cell.server === server && cell.workload === workload && cell.status === "ok"
    );
  const out: Check[] = [];
  const add = (server: string, target: string, ok: boolean | null, detail: string) =>
    out.push({ server, target, ok, detail });
  const ours = servers.filter((server) => server.protocol === "chat" || server.protocol === "text");
  // The JSON server the plain-text one is compared with: the same server, same options.
  const jsonTwin = servers.find((server) => server.name === "chat (:memory:)") ??
    servers.find((server) => server.name === "chat");
  const ncatBurst = find("ncat", "burst");
  const ngircdBurst = find("ngircd", "burst");
  for (const server of ours) {
    const name = server.name;
    const text = server.protocol === "text";
    const burst = find(name, "burst");
    if (!text) {
      const target = "burst deliveries/s ≥ 0.9 × ncat, no loss, no reordering";
      if (burst?.deliveriesPerSecond && ncatBurst?.deliveriesPerSecond) {
        const ratio = burst.deliveriesPerSecond / ncatBurst.deliveriesPerSecond;
        const clean = burst.lost === 0 && burst.reordered === 0 && burst.duplicates === 0;
        add(
          name,
          target,
          ratio >= 0.9 && clean,
          `${fmtRate(burst.deliveriesPerSecond)}/s vs ncat ${
            fmtRate(ncatBurst.deliveriesPerSecond)
          }/s = ${
            ratio.toFixed(2)
          }×; lost ${burst.lost}, reordered ${burst.reordered}, duplicates ${burst.duplicates}`,
        );
      } else {
        add(name, target, null, "not measured (needs burst for both servers)");
      }
      const cpuTarget = "server CPU per delivery (burst, JSON) ≤ 0.5 × ngircd's and ≤ 2.5 × ncat's";
      const parts: string[] = [];
      const verdicts: boolean[] = [];
      for (
        const [peer, cell, most] of [["ngircd", ngircdBurst, 0.5], [
          "ncat",
          ncatBurst,
          2.5,
        ]] as const
      ) {
        if (burst?.cpuUsPer1k && cell?.cpuUsPer1k) {
          const ratio = burst.cpuUsPer1k / cell.cpuUsPer1k;
          verdicts.push(ratio <= most);
          parts.push(
            `vs ${peer} ${fmtInt(cell.cpuUsPer1k)} µs = ${ratio.toFixed(2)}× (limit ${most}×)`,
          );
        } else {
          parts.push(`${peer} not measured`);
        }
      }
      add(
        name,
        cpuTarget,
        verdicts.length === 0 ? null : verdicts.every(Boolean),
        burst?.cpuUsPer1k
          ? `${fmtInt(burst.cpuUsPer1k)} µs per 1,000 deliveries; ${parts.join("; ")}`
          : "not measured (needs burst)",
      );
    } else {
      const twin = jsonTwin ? find(jsonTwin.name, "burst") : undefined;
      const target = "server CPU per delivery (burst, plain text) ≤ the JSON path's";
      if (burst?.cpuUsPer1k && twin?.cpuUsPer1k) {
        const ratio = burst.cpuUsPer1k / twin.cpuUsPer1k;
        const peers = [["ngircd", ngircdBurst], ["ncat", ncatBurst]] as const;
        const extra = peers.filter(([, cell]) => cell?.cpuUsPer1k).map(([peer, cell]) =>
          `${(burst.cpuUsPer1k! / cell!.cpuUsPer1k!).toFixed(2)}× ${peer}`
        );
        add(
          name,
          target,
          ratio <= 1,
          `${fmtInt(burst.cpuUsPer1k)} µs vs ${jsonTwin!.name} ${
            fmtInt(twin.cpuUsPer1k)
          } µs per 1,000 deliveries = ${ratio.toFixed(2)}×${
            extra.length > 0 ? ` (${extra.join(", ")})` : ""
          }`,
        );
      } else {
        add(
          name,
          target,
          null,
          `not measured (needs burst for it and ${jsonTwin?.name ?? "chat"})`,
        );
      }
    }
    if (burst) {
      add(
        name,
        "burst: no loss, no reordering, no duplicates",
        burst.lost === 0 && burst.reordered === 0 && burst.duplicates === 0,
        `lost ${fmtInt(burst.lost)}, reordered ${fmtInt(burst.reordered)}, duplicates ${
          fmtInt(burst.duplicates)
        } of ${fmtInt((burst.deliveries ?? 0) + (burst.lost ?? 0))} expected deliveries`,
      );
      const growth = burst.rssGrowthMb;
      add(
        name,
        `burst: peak RSS ≤ RSS at rest + ${BURST_RSS_GROWTH_MB} MB`,
        growth === undefined ? null : growth <= BURST_RSS_GROWTH_MB,
        `peak ${burst.peakRssMb} MB, ${growth ?? "—"} MB over rest (${burst.rssBeforeMb} MB)${
          burst.runs ? "; the most of any run" : ""
        }`,
      );
    }
    const paced = find(name, "paced");
    const ncatPaced = find("ncat", "paced");
    if (paced?.p99Ms != null && ncatPaced?.p99Ms != null) {
      add(
        name,
        "paced p99 ≤ ncat's p99",
        paced.p99Ms <= ncatPaced.p99Ms && paced.lost === 0,
        `${fmtMs(paced.p99Ms)} ms vs ncat ${fmtMs(ncatPaced.p99Ms)} ms; lost ${paced.lost}`,
      );
    } else {
      add(name, "paced p99 ≤ ncat's p99", null, "not measured (needs paced for both servers)");
    }
    const idle = find(name, "idle");
    if (idle) {
      const wanted = 10_000;
      const enough = (idle.idleHeld ?? 0) >= wanted;
      const small = idle.rssPerIdleKb != null && idle.rssPerIdleKb <= IDLE_KB_PER_CONNECTION;
      add(
        name,
        `10,000 idle connections held, ≤ ${IDLE_KB_PER_CONNECTION} KB RSS each`,
        (idle.idleWanted ?? 0) < wanted ? null : enough && small,
        `held ${fmtInt(idle.idleHeld)} of ${fmtInt(idle.idleWanted)}, ${
          idle.rssPerIdleKb == null ? "—" : idle.rssPerIdleKb.toFixed(1)
        } KB each (RSS ${idle.rssBeforeMb} MB before, ${idle.rssHoldingMb ?? "—"} MB holding)` +
          ((idle.idleWanted ?? 0) < wanted ? "; not checked: this run opened fewer" : ""),
      );
    }
    const slow = find(name, "slow");
    const slowTarget =
      "slow consumer: others' p99 within 20% of paced, nothing lost, server RSS bounded";
    if (slow?.p99Ms != null && paced?.p99Ms != null) {
      const { limit, why } = p99Limit(paced.p99Ms);
      const rssLimit = (paced.peakRssMb ?? 0) + 32;
      const bounded = (slow.peakRssMb ?? Infinity) <= rssLimit;
      add(
        name,
        slowTarget,
        slow.p99Ms <= limit && slow.lost === 0 && bounded,
        `p99 ${fmtMs(slow.p99Ms)} ms vs paced ${fmtMs(paced.p99Ms)} ms (limit ${
          fmtMs(limit)
        } ms: paced ${why}); others lost ${slow.lost}; ` +
          `peak RSS ${slow.peakRssMb} MB vs paced ${paced.peakRssMb} MB (limit paced + 32 MB); ` +
          `slow client ${slow.slowDisconnected ? "disconnected by the server" : "still connected"}`,
      );
    } else {
      add(name, slowTarget, null, "not measured (needs paced and slow)");
    }
    const crowd = find(name, "crowd");
    const crowdTarget = `crowd (paced + ${
      fmtInt(sizes.crowdReaders)
    } slow readers): peak RSS ≤ rest + queue budget + margin`;
    if (crowd) {
      const { limitMb, detail } = crowdRssLimit(server, crowd, sizes);
      add(
        name,
        crowdTarget,
        (crowd.peakRssMb ?? Infinity) <= limitMb,
        `peak ${crowd.peakRssMb} MB vs ${detail}; others' p99 ${fmtMs(crowd.p99Ms)} ms` +
          (paced?.p99Ms != null ? ` (paced ${fmtMs(paced.p99Ms)} ms)` : "") +
          `, lost ${fmtInt(crowd.lost)}, reordered ${fmtInt(crowd.reordered)}; ${
            fmtInt(crowd.crowdDisconnected)
          } of ${fmtInt(crowd.crowdJoined)} slow readers disconnected by the server`,
      );
    } else {
      add(name, crowdTarget, null, "not measured (needs crowd)");
    }
    // Against the last full run. Absolute figures move with the machine's load, so when ncat
    // ran the same workload both times the ratio to ncat's p99 is compared instead.
    const same = previous !== undefined &&
      previous.sizes.pacedClients === sizes.pacedClients && previous.sizes.rate === sizes.rate &&
      previous.sizes.duration === sizes.duration;
    for (const workload of ["paced", "slow"] as const) {
      const now = workload === "paced" ? paced : slow;
      const before = previous?.cells.find((cell) =>
        cell.server === name && cell.workload === workload && cell.status === "ok"
      );
      if (!now || now.p99Ms == null) continue;
      const target = `${workload}: p99 and loss no worse than the last full run`;
      if (!previous || !before || before.p99Ms == null) {
        add(name, target, null, `no earlier full run of ${name} ${workload} in latest.json`);
        continue;
      }
      if (!same) {
        add(name, target, null, `not compared: the run of ${previous.date} had other sizes`);
        continue;
      }
      const ncatNow = find("ncat", workload)?.p99Ms;
      const ncatBefore = previous.cells.find((cell) =>
        cell.server === "ncat" && cell.workload === workload && cell.status === "ok"
      )?.p99Ms;
      const lostOk = (now.lost ?? 0) <= (before.lost ?? 0);
      const slowOk = workload !== "slow" || !before.slowDisconnected || !!now.slowDisconnected;
      let p99Ok: boolean;
      let p99Detail: string;
      if (ncatNow && ncatBefore) {
        const ratioNow = now.p99Ms / ncatNow;
        const ratioBefore = before.p99Ms / ncatBefore;
        p99Ok = ratioNow <= ratioBefore * 1.2;
        p99Detail = `p99 ${fmtMs(now.p99Ms)} ms = ${ratioNow.toFixed(2)}× ncat's ${
          fmtMs(ncatNow)
        } ms, vs ${fmtMs(before.p99Ms)} ms = ${ratioBefore.toFixed(2)}× ncat's ${
          fmtMs(ncatBefore)
        } ms on ${previous.date} (limit ${(ratioBefore * 1.2).toFixed(2)}×: + 20%)`;
      } else {
        const { limit, why } = p99Limit(before.p99Ms);
        p99Ok = now.p99Ms <= limit;
        p99Detail = `p99 ${fmtMs(now.p99Ms)} ms vs ${
          fmtMs(before.p99Ms)
        } ms on ${previous.date} (limit ${
          fmtMs(limit)
        } ms: ${why}; absolute across runs, without ncat ${workload} to compare with)`;
      }
      add(
        name,
        target,
        p99Ok && lostOk && slowOk,
        `${p99Detail}; lost ${fmtInt(now.lost)} vs ${fmtInt(before.lost)}` +
          (workload === "slow"
            ? `; slow client ${now.slowDisconnected ? "disconnected" : "still connected"} vs ${
              before.slowDisconnected ? "disconnected" : "still connected"
            }`
            : ""),
      );
    }
  }
  return out;
}

function checkMark(ok: boolean | null): string {
  return ok === null ? "–" : ok ? "✓" : "✗";
}

function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/**
 * Grouped horizontal bars: burst deliveries/s and paced p99 per server, with
 * the share lost next to a bar when messages were lost.
 *
 * @param cells The measurements.
 * @param servers The servers, in the order to draw them.
 * @param title The chart's title.
 * @returns The SVG document.
 */
export function svgChart(cells: Cell[], servers: string[], title: string): string {
  const panels = [
    {
      heading: "Burst: deliveries per second (higher is better)",
      value: (cell: Cell | undefined) => cell?.deliveriesPerSecond ?? null,
      workload: "burst" as Workload,
      label: (value: number) => `${fmtRate(value)}/s`,
      color: "#2f81f7",
    },
    {
      heading: "Paced: p99 latency in ms (lower is better)",
      value: (cell: Cell | undefined) => cell?.p99Ms ?? null,
      workload: "paced" as Workload,
      label: (value: number) => `${fmtMs(value)} ms`,
      color: "#db6d28",
    },
  ];
  const width = 760;
  const labelWidth = 150;
  const barMax = width - labelWidth - 150;
  const barHeight = 20;
  const gap = 8;
  let y = 54;
  const parts: string[] = [];
  for (const panel of panels) {
    parts.push(
      `<text x="20" y="${y}" class="h">${escapeXml(panel.heading)}</text>`,
    );
    y += 14;
    const values = servers.map((server) =>
      panel.value(
        cells.find((cell) =>
          cell.server === server && cell.workload === panel.workload && cell.status === "ok"
        ),
      )
    );
    const max = Math.max(0, ...values.filter((value): value is number => value !== null));
    servers.forEach((server, i) => {
      const value = values[i]!;
      const cell = cells.find((one) =>
        one.server === server && one.workload === panel.workload && one.status === "ok"
      );
      const expected = (cell?.deliveries ?? 0) + (cell?.lost ?? 0);
      const lost = cell?.lost && expected > 0
        ? `, ${(cell.lost / expected * 100).toFixed(cell.lost / expected < 0.01 ? 2 : 0)}% lost`
        : "";
      const ours = server.startsWith("chat");
      const barY = y + i * (barHeight + gap);
      parts.push(
        `<text x="${labelWidth + 10}" y="${barY + 15}" class="l${
          ours ? " b" : ""
        }" text-anchor="end">${escapeXml(server)}</text>`,
      );
      if (value === null) {
        parts.push(`<text x="${labelWidth + 22}" y="${barY + 15}" class="v">not measured</text>`);
        return;
      }
      const length = max > 0 ? Math.max(2, (value / max) * barMax) : 2;
      parts.push(
        `<rect x="${labelWidth + 20}" y="${barY}" width="${
          length.toFixed(1)
        }" height="${barHeight}" rx="3" fill="${panel.color}" fill-opacity="${ours ? 1 : 0.55}"/>`,
        `<text x="${labelWidth + 28 + length}" y="${barY + 15}" class="v">${
          escapeXml(panel.label(value) + lost)
        }</text>`,
      );
    });
    y += servers.length * (barHeight + gap) + 28;
  }
  const height = y;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${
    escapeXml(title)
  }">
<style>
text { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; font-size: 13px; fill: #1f2328; }
.t { font-size: 15px; font-weight: 600; }
.h { font-size: 13px; font-weight: 600; }
.b { font-weight: 600; }
.v { fill: #424a53; }
</style>
<rect x="0.5" y="0.5" width="${width - 1}" height="${
    height - 1
  }" rx="8" fill="#ffffff" stroke="#d0d7de"/>
<text x="20" y="24" class="t">${escapeXml(title)}</text>
${parts.join("\n")}
</svg>
`;
}

async function machine(): Promise<Record<string, string>> {
  const first = (text: string | undefined) =>
    text?.trim().split("\n")[0]?.trim() ?? "not installed";
  let cpu = "unknown";
  try {
    cpu = /^model name\s*:\s*(.*)$/m.exec(await Deno.readTextFile("/proc/cpuinfo"))?.[1] ?? cpu;
  } catch {
    // Not Linux.
  }
  const nproc = await output(["nproc"]);
  const ncat = await output(["ncat", "--version"]);
  const ngircd = await output(["ngircd", "--version"]);
  const node = await output(["node", "--version"]);
  const rev = await output(["git", "rev-parse", "--short", "HEAD"]);
  const dirty = await output(["git", "status", "--porcelain", "--untracked-files=no"]);
  const changed = dirty?.text.split("\n").filter((line) => line.trim() && !line.includes("bench/"))
    .length ?? 0;
  return {
    nproc: first(nproc?.text) ?? String(navigator.hardwareConcurrency),
    cpu,
    memory: `${Math.round(Deno.systemMemoryInfo().total / 1024 / 1024 / 1024)} GiB`,
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    ncat: first(ncat?.text.match(/Ncat: Version [^\n(]*/)?.[0]),
    ngircd: first(ngircd?.text.match(/ngIRCd [^\n]*/)?.[0]),
    node: first(node?.text),
    revision: rev
      ? `${rev.text.trim()}${changed > 0 ? ` with ${changed} uncommitted changes` : ""}`
      : "unknown",
  };
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    strict: true,
    options: {
      quick: { type: "boolean" },
      only: { type: "string", multiple: true },
      workload: { type: "string", multiple: true },
      "cpu-prof": { type: "string" },
      "chat-args": { type: "string" },
      cluster: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.cluster) return await (await import("./cluster.ts")).runCluster(values.quick);
  if (values.help) {
    console.log(
      "Usage: deno task bench [--quick] [--only NAME[,NAME]] [--workload NAME[,NAME]] [--cpu-prof DIR] [--chat-args=ARGS] [--cluster]",
    );
    return 0;
  }
  const clk = await output(["getconf", "CLK_TCK"]);
  clockTicks = Number(clk?.text.trim()) || 100;
  const sizes = values.quick ? QUICK : FULL;
  const only = (values.only ?? []).flatMap((value) => value.split(",")).map((value) =>
    value.trim().toLowerCase()
  ).filter(Boolean);
  const workloadFilter = (values.workload ?? []).flatMap((value) => value.split(","))
    .map((value) => value.trim().toLowerCase()).filter(Boolean);
  for (const name of workloadFilter) {
    if (!WORKLOADS.includes(name as Workload)) {
      console.error(`bench: Unknown workload "${name}"; use ${WORKLOADS.join(", ")}`);
      return 2;
    }
  }
  const workloads = workloadFilter.length > 0
    ? WORKLOADS.filter((workload) => workloadFilter.includes(workload))
    : WORKLOADS;
  const cpuProf = values["cpu-prof"];
  if (cpuProf) await Deno.mkdir(cpuProf, { recursive: true });

  const allServers = [
    ...await chatServers(cpuProf, values["chat-args"]?.split(/\s+/).filter(Boolean) ?? []),
    await ncatServer(),
    await ngircdServer(),
    ...await naiveServers(),
  ];
  const servers = only.length > 0
    ? allServers.filter((server) => only.some((name) => server.name.toLowerCase().includes(name)))
    : allServers;
  if (servers.length === 0) {
    console.error(
      `bench: No server matches ${only.map((name) => `"${name}"`).join(", ")}; servers: ${
        allServers.map((server) => server.name).join(", ")
      }`,
    );
    return 2;
  }
  const previous = await readPrevious();
  const command = ["deno", "task", "bench", ...Deno.args].join(" ");
  const began = new Date();
  log(`${command}: ${servers.length} servers × ${workloads.length} workloads`);
  for (const server of servers) {
    if (server.skip) log(`  ${server.name}: skipped: ${server.skip}`);
  }

  const cells: Cell[] = [];
  for (const server of servers) {
    for (const workload of workloads) {
      const start = Date.now();
      log(`  ${server.name} ${workload} …`);
      const repeats = workload === "burst" || workload === "idle" ? sizes.burstRepeats : 1;
      const runs: Cell[] = [];
      for (let i = 0; i < repeats; i++) {
        runs.push(await runCell(server, workload, sizes));
        if (runs[0]!.status === "skipped") break;
      }
      const cell = median(runs);
      cells.push(cell);
      const seconds = ((Date.now() - start) / 1000).toFixed(1);
      if (cell.status !== "ok") {
        log(`  ${server.name} ${workload}: ${cell.status}: ${cell.reason} (${seconds} s)`);
      } else if (workload === "idle") {
        log(
          `  ${server.name} idle: held ${cell.idleHeld}, ${cell.rssPerIdleKb} KB each (${seconds} s)`,
        );
      } else {
        log(
          `  ${server.name} ${workload}: ${fmtRate(cell.deliveriesPerSecond)}/s, p50 ${
            fmtMs(cell.p50Ms)
          } ms, p99 ${
            fmtMs(cell.p99Ms)
          } ms, lost ${cell.lost}, CPU ${cell.cpuUsPer1k} µs/1k (${seconds} s)`,
        );
      }
    }
  }

  const info = await machine();
  const table = rows(cells);
  const targetChecks = checks(cells, servers, sizes, previous);
  const serverNotes = servers.flatMap((server) =>
    server.notes.map((note) => `${server.name}: ${note}`)
  );
  const sizeLine =
    `burst ${sizes.burstClients} clients × ${sizes.burstMessages} messages; paced ${sizes.pacedClients} clients × ${sizes.rate} msgs/s for ${sizes.duration} s; idle ${
      fmtInt(sizes.idleConnections)
    } connections; slow = paced + 1 client that never reads; crowd = paced + ${
      fmtInt(sizes.crowdReaders)
    } clients in the same room that each read ${sizes.crowdReadBytes / 1024} KB every ${
      sizes.crowdReadEveryMs / 1000
    } s`;
  const machineLine =
    `${info.nproc} cores (${info.cpu}), ${info.memory}, Linux ${info.kernel}; deno ${info.deno}, ${info.ncat}, ${info.ngircd}, node ${info.node}; chat at ${info.revision}`;
  const elapsed = ((Date.now() - began.getTime()) / 1000).toFixed(0);

  const text = [
    "",
    textTable(table.rows),
    "",
    ...table.notes.map((note, i) => `[${i + 1}] ${note}`),
    "",
    "Targets:",
    ...targetChecks.map((check) =>
      `  ${checkMark(check.ok)} ${check.server}: ${check.target}: ${check.detail}`
    ),
    "",
    `Workloads: ${sizeLine}`,
    `Servers: ${serverNotes.join("; ")}`,
    `CPU per 1,000 deliveries: server utime+stime between the first send and the last delivery, in ${clockTicks} Hz ticks`,
    `Machine: ${machineLine}`,
    `Command: ${command} (${elapsed} s)`,
  ].join("\n");
  console.log(text);

  const partial = values.quick || only.length > 0 || workloadFilter.length > 0;
  const base = partial ? "partial" : "latest";
  const date = began.toISOString().slice(0, 10);
  await Deno.mkdir(RESULTS_DIR, { recursive: true });
  const json = {
    date: began.toISOString(),
    command,
    elapsedSeconds: Number(elapsed),
    mode: values.quick ? "quick" : "full",
    sizes,
    clockTicksPerSecond: clockTicks,
    machine: info,
    servers: servers.map((server) => ({
      name: server.name,
      protocol: server.protocol,
      skip: server.skip,
      notes: server.notes,
    })),
    cells,
    targets: targetChecks,
  };
  const jsonText = JSON.stringify(json, null, 2) + "\n";
  await Deno.writeTextFile(`${RESULTS_DIR}${date}${partial ? "-partial" : ""}.json`, jsonText);
  await Deno.writeTextFile(`${RESULTS_DIR}${base}.json`, jsonText);
  const title = `Fan-out on ${info.nproc} cores, ${date}${values.quick ? " (quick)" : ""}`;
  await Deno.writeTextFile(
    `${RESULTS_DIR}${base}.svg`,
    svgChart(cells, servers.map((server) => server.name), title),
  );
  const markdown = [
    `## Benchmark, ${date}${values.quick ? " (quick)" : ""}`,
    "",
    `![Burst deliveries/s and paced p99 per server](${base}.svg)`,
    "",
    markdownTable(table.rows),
    "",
    ...table.notes.map((note, i) => `${i + 1}. ${note}`),
    "",
    "### Targets",
    "",
    ...targetChecks.map((check) =>
      `- ${checkMark(check.ok)} **${check.server}**: ${check.target}. ${check.detail}`
    ),
    "",
    "### How it was measured",
    "",
    `- Workloads: ${sizeLine}. Every message is 64 bytes; every client receives every other client's messages.${
      sizes.burstRepeats > 1
        ? ` Burst and idle run ${sizes.burstRepeats} times per server, each on a fresh server; the table shows the run with the median deliveries/s and the median CPU (burst), the median RSS per connection (idle).`
        : ""
    }`,
    `- One load generator process (two threads) on the same machine, over 127.0.0.1; each server restarted before each workload. Clients connect at most 8 at a time (ncat and ngircd listen with a backlog of 10).`,
    `- Latency: from the send time written into each message to the read that brought it (one clock for all clients). Lost: messages sent × (clients − 1) − distinct deliveries, once nothing arrived for ${
      sizes.quietMs / 1000
    } s. Reordered: a sender's sequence number going backwards at a receiver.`,
    `- Before paced, slow and crowd, a warm-up sends about 3.5 MB of 384-byte lines to every client over ${
      sizes.warmUpMs / 1000
    } s (not measured), so that the slow client's socket buffers (about 4 MB on loopback) are nearly full when the measured phase starts.${
      values.quick
        ? " In --quick the measured phase is too short for that client to pass them; run without --quick for the slow-consumer check."
        : ""
    }`,
    `- CPU per 1,000 deliveries: the server's utime+stime (${clockTicks} Hz ticks) between the first send and the last delivery. Peak RSS: VmHWM. RSS at rest: VmRSS 300 ms after two clients have exchanged 5 messages each and left (what serving a first client costs once per process, code paged in and compiled, is not counted against the workload). RSS per idle connection: (VmRSS 3 s after the last connection was held − VmRSS before) / connections held.`,
    `- Crowd: the slow readers join with the paced clients, take ${
      sizes.crowdReadBytes / 1024
    } KB every ${
      sizes.crowdReadEveryMs / 1000
    } s (each from its own offset) from then until the end, and are not counted in latency or loss; a reader whose connection ends before the generator closes it counts as disconnected by the server. Our server's peak RSS may reach its RSS at rest + its whole queue budget (\`--max-total-queue-bytes\`, 64 MiB by default) + a margin of ${BURST_RSS_GROWTH_MB} MB (what the burst check allows a fan-out beyond what is queued: decoding, encoding, heap slack) + ${IDLE_KB_PER_CONNECTION} KB per connection (the idle target).`,
    ...serverNotes.map((note) => `- ${note}`),
    `- Machine: ${machineLine}.`,
    `- Command: \`${command}\` (${elapsed} s).`,
    "",
  ].join("\n");
  await Deno.writeTextFile(`${RESULTS_DIR}${base}.md`, markdown);
  log(`Wrote ${RESULTS_DIR}${base}.{json,md,svg} and ${date}${partial ? "-partial" : ""}.json`);
  if (cpuProf) {
    log(`Profiles in ${cpuProf}; summarise with: deno run -A bench/profile_summary.ts DIR`);
  }
  if (!partial) {
    // The file-transfer target: 1 GiB through the server, its RSS low.
    const transfer = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("./transfer.ts", import.meta.url).pathname],
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (!transfer.success) return 1;
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main());
