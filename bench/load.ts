/**
 * The benchmark's load generator: one process opens every client on
 * 127.0.0.1, drives one workload against one server and prints one JSON line
 * with the result on stdout. Progress events (`@event {...}`) go to stderr,
 * where `run.ts` picks them up to sample the server at the right moments.
 *
 * The clients are spread over `--threads` workers (two by default), each
 * reading into reused buffers and parsing only the payload of each message,
 * so that the generator is not what limits a fast server.
 *
 * Every message text is 64 ASCII bytes that carry the sender, its sequence
 * number and the send time, so a receiver computes latency, loss and
 * reordering on its own:
 *
 * ```
 * ^000012.0000003.1795296177929286.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
 *  sender seq     sent at, µs since the epoch
 * ```
 *
 * At most `--concurrency` connections (8 by default) are being opened at
 * once: ncat and ngircd listen with a backlog of 10, and a storm of
 * connects beyond it only measures SYN retransmission timers.
 *
 * Workloads: `burst` (every client sends `--messages` as fast as it can),
 * `paced` (a warm-up, then `--rate` messages per second per client for
 * `--duration` seconds), `slow` (paced, plus one client that never reads),
 * `crowd` (paced, plus `--crowd` clients in the same room that each read
 * `--crowd-read-bytes` every `--crowd-read-every-ms`, from the warm-up to the
 * end) and `idle` (open `--connections`, hold them until a line arrives on
 * stdin or `--hold` seconds pass).
 *
 * Protocols: `chat` (our JSON frames), `text` (our plain-text door, what `nc`
 * users get: the name as the first line, then plain lines), `irc` and
 * `lines` (a relay that passes lines as they are).
 *
 * @example Burst against ncat
 * ```sh
 * ncat --chat -l 127.0.0.1 7000 --max-conns 20000 &
 * deno run -A bench/load.ts --protocol lines --port 7000 --workload burst
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  clock,
  FILLER_BYTES,
  type LoadOptions,
  type Protocol,
  type ShardReply,
  type ShardRequest,
  type ShardStatus,
  type ShardTally,
  type Workload,
} from "./_load_shard.ts";

function usage(): never {
  console.error(
    `Usage: deno run -A bench/load.ts --protocol lines|chat|text|irc|ws --port N --workload burst|paced|idle|slow|crowd
  [--clients N] [--messages N] [--rate N] [--duration S] [--connections N] [--threads N]
  [--quiet-ms N] [--warm-up-ms N] [--timeout S] [--connect-timeout S] [--hold S] [--concurrency N] [--seed N]
  [--crowd N] [--crowd-read-bytes N] [--crowd-read-every-ms N]`,
  );
  Deno.exit(2);
}

function readOptions(args: string[]): LoadOptions {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      protocol: { type: "string" },
      port: { type: "string" },
      workload: { type: "string" },
      clients: { type: "string" },
      messages: { type: "string" },
      rate: { type: "string" },
      duration: { type: "string" },
      connections: { type: "string" },
      threads: { type: "string" },
      "quiet-ms": { type: "string" },
      "warm-up-ms": { type: "string" },
      timeout: { type: "string" },
      "connect-timeout": { type: "string" },
      hold: { type: "string" },
      concurrency: { type: "string" },
      seed: { type: "string" },
      crowd: { type: "string" },
      "crowd-read-bytes": { type: "string" },
      "crowd-read-every-ms": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) usage();
  const protocol = values.protocol as Protocol;
  const workload = values.workload as Workload;
  if (!["lines", "chat", "text", "irc", "ws"].includes(protocol)) usage();
  if (!["burst", "paced", "idle", "slow", "crowd"].includes(workload)) usage();
  const number = (text: string | undefined, fallback: number): number => {
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isFinite(value) || value < 0) {
      console.error(`load: Invalid number "${text}"`);
      Deno.exit(2);
    }
    return value;
  };
  const port = number(values.port, NaN);
  if (!Number.isInteger(port) || port < 1 || port > 65535) usage();
  return {
    protocol,
    port,
    workload,
    clients: number(values.clients, workload === "burst" ? 200 : 100),
    messages: number(values.messages, 50),
    rate: number(values.rate, 20),
    duration: number(values.duration, 10),
    connections: number(values.connections, 10_000),
    quietMs: number(values["quiet-ms"], 2000),
    warmUpMs: number(values["warm-up-ms"], 3000),
    timeoutS: number(values.timeout, 90),
    connectTimeoutS: number(values["connect-timeout"], 60),
    holdS: number(values.hold, 30),
    concurrency: number(values.concurrency, 8),
    threads: Math.max(1, Math.floor(number(values.threads, 2))),
    seed: number(values.seed, 1),
    crowd: workload === "crowd" ? Math.floor(number(values.crowd, 1000)) : 0,
    crowdReadBytes: Math.max(1, Math.floor(number(values["crowd-read-bytes"], 4096))),
    crowdReadEveryMs: Math.max(1, number(values["crowd-read-every-ms"], 3000)),
  };
}

function event(name: string, fields: Record<string, unknown> = {}): void {
  console.error(`@event ${JSON.stringify({ event: name, at: clock(), ...fields })}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

function round(value: number | null, digits = 2): number | null {
  if (value === null || !Number.isFinite(value)) return null;
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function cpuTicks(): number {
  try {
    const stat = Deno.readTextFileSync("/proc/self/stat");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return NaN;
  }
}

/** A worker thread that owns some of the clients. */
class ShardHandle {
  #worker: Worker;
  #next = 1;
  #pending = new Map<number, PromiseWithResolvers<Record<string, unknown>>>();

  constructor() {
    this.#worker = new Worker(new URL("./_load_shard.ts", import.meta.url), { type: "module" });
    this.#worker.onmessage = (message: MessageEvent<ShardReply>) => {
      const reply = message.data;
      const waiting = this.#pending.get(reply.id);
      if (!waiting) return;
      this.#pending.delete(reply.id);
      if (reply.ok) waiting.resolve(reply.value ?? {});
      else waiting.reject(new Error(reply.error));
    };
    this.#worker.onerror = (error) => {
      error.preventDefault();
      for (const waiting of this.#pending.values()) waiting.reject(new Error(error.message));
      this.#pending.clear();
    };
  }

  ask<T = Record<string, unknown>>(request: ShardRequest): Promise<T> {
    const id = this.#next++;
    const waiting = Promise.withResolvers<Record<string, unknown>>();
    this.#pending.set(id, waiting);
    this.#worker.postMessage({ id, request });
    return waiting.promise as Promise<T>;
  }

  terminate(): void {
    this.#worker.terminate();
  }
}

/** Every thread, asked together. */
class Shards {
  readonly handles: ShardHandle[];
  /** The thread that owns each client. */
  readonly owner: (index: number) => number;
  syncRound = 0;

  constructor(count: number) {
    this.handles = Array.from({ length: count }, () => new ShardHandle());
    this.owner = (index) => index % count;
  }

  all<T = Record<string, unknown>>(request: ShardRequest): Promise<T[]> {
    return Promise.all(this.handles.map((handle) => handle.ask<T>(request)));
  }

  /** Asks each thread with its own share of `indices`. */
  split<T>(indices: number[], make: (mine: number[]) => ShardRequest): Promise<T[]> {
    return Promise.all(this.handles.map((handle, shard) => {
      const mine = indices.filter((index) => this.owner(index) === shard);
      return handle.ask<T>(make(mine));
    }));
  }

  async status(): Promise<ShardStatus> {
    const parts = await this.all<ShardStatus>({ op: "status" });
    const sum: ShardStatus = {
      connected: 0,
      open: 0,
      readers: 0,
      synced: 0,
      sent: 0,
      sendersDone: 0,
      senders: 0,
      received: 0,
      unique: 0,
      lastAt: 0,
      byes: 0,
      bytesRead: 0,
      fillSent: 0,
      fillReceived: 0,
      crowdJoined: 0,
      crowdClosed: 0,
      crowdBytes: 0,
    };
    for (const part of parts) {
      for (const key of Object.keys(sum) as (keyof ShardStatus)[]) {
        sum[key] = key === "lastAt" ? Math.max(sum[key], part[key]) : sum[key] + part[key];
      }
    }
    return sum;
  }

  /**
   * One client sends a marker line, again every 500 ms (a relay only sends a
   * line to the clients it has accepted so far), until every other reading
   * client saw one or `deadline` passes. Returns how many readers saw it
   * (the sender included) and how many readers there are.
   */
  async sync(deadline: number): Promise<{ seen: number; readers: number }> {
    const from = this.syncRound + 1;
    await this.all({ op: "syncFrom", from });
    let resend = 0;
    let status = await this.status();
    let sender = false;
    while (clock() < deadline) {
      if (sender && status.synced >= status.readers - 1) break;
      if (clock() >= resend) {
        resend = clock() + 500;
        const roundNow = ++this.syncRound;
        sender = false;
        for (const handle of this.handles) {
          const answer = await handle.ask<{ sent: boolean }>({ op: "syncSend", round: roundNow });
          if (answer.sent) {
            sender = true;
            break;
          }
        }
        if (!sender) break;
      }
      await sleep(25);
      status = await this.status();
    }
    await this.all({ op: "syncFrom", from: 0 });
    return {
      seen: sender ? Math.min(status.readers, status.synced + 1) : 0,
      readers: status.readers,
    };
  }

  terminate(): void {
    for (const handle of this.handles) handle.terminate();
  }
}

interface Opened {
  held: number;
  /** The most connections seen held at once during the ramp. */
  peak: number;
  open: number;
  failed: number;
  errors: Record<string, number>;
  setupMs: number;
  notes: string[];
}

/**
 * Opens clients in steps of `step`. Plain-text relays say nothing on
 * connect, so for them each step is checked with a broadcast that must reach
 * every open client (a connection still waiting in the listen backlog does
 * not count), and they are opened one at a time per thread. With
 * `stopOnShortfall`, the first step that fails the check ends the ramp.
 */
async function openAll(
  shards: Shards,
  options: LoadOptions,
  total: number,
  step: number,
  stopOnShortfall: boolean,
): Promise<Opened> {
  const verify = options.protocol === "lines";
  const concurrency = verify
    ? 1
    : Math.max(1, Math.ceil(options.concurrency / shards.handles.length));
  const deadline = clock() + options.connectTimeoutS * 1000;
  const opened: Opened = {
    held: 0,
    peak: 0,
    open: 0,
    failed: 0,
    errors: {},
    setupMs: 0,
    notes: [],
  };
  const begin = clock();
  for (let offset = 0; offset < total; offset += step) {
    const indices = Array.from(
      { length: Math.min(step, total - offset) },
      (_, i) => offset + i,
    );
    const answers = await shards.split<{ joined: number; failed: number; errors: object }>(
      indices,
      (mine) => ({ op: "open", indices: mine, deadline, concurrency }),
    );
    let failed = 0;
    for (const answer of answers) {
      failed += answer.failed;
      for (const [text, count] of Object.entries(answer.errors)) {
        opened.errors[text] = (opened.errors[text] ?? 0) + (count as number);
      }
    }
    opened.failed += failed;
    const status = await shards.status();
    opened.open = status.open;
    event("progress", { connected: status.connected, open: status.open });
    if (!verify) {
      opened.held = status.open;
      opened.peak = Math.max(opened.peak, opened.held);
      continue;
    }
    const { seen, readers } = await shards.sync(Math.min(deadline, clock() + 15_000));
    const slowOnes = status.open - readers;
    opened.held = seen + slowOnes;
    opened.peak = Math.max(opened.peak, opened.held);
    event("progress", { held: opened.held });
    if (seen < readers || failed > 0 || status.open < status.connected) {
      opened.notes.push(
        `after ${offset + indices.length} connects: ${status.open} open, ${seen} reached by a ` +
          `broadcast`,
      );
      if (stopOnShortfall) break;
    }
    if (clock() >= deadline) break;
  }
  if (clock() >= deadline) {
    opened.notes.push(`the connect deadline (${options.connectTimeoutS} s) passed`);
  }
  opened.setupMs = clock() - begin;
  return opened;
}

function percentile(sorted: Float64Array, q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! / 1000;
}

/** Waits until every expected delivery arrived, nothing arrived for `quietMs`, or `deadline`. */
async function settle(
  shards: Shards,
  receivers: number,
  quietMs: number,
  deadline: number,
): Promise<{ outcome: "complete" | "quiet" | "deadline"; status: ShardStatus }> {
  let lastCount = -1;
  let lastChange = clock();
  while (true) {
    const status = await shards.status();
    const now = clock();
    const sendersDone = status.sendersDone >= status.senders;
    const expected = status.sent * (receivers - 1);
    if (sendersDone && status.unique >= expected) return { outcome: "complete", status };
    if (status.received !== lastCount) {
      lastCount = status.received;
      lastChange = now;
    } else if (sendersDone && now - lastChange >= quietMs) {
      return { outcome: "quiet", status };
    }
    if (now >= deadline) return { outcome: "deadline", status };
    await sleep(20);
  }
}

/** The slow readers of `crowd`, seen from both ends. */
interface CrowdSockets {
  /** Connections the server has closed or reset. */
  disconnected: number;
  /** Bytes on their way to the slow readers in kernel buffers: the server's send queues and the readers' receive queues. */
  kernelBytes: number;
}

/**
 * Counts the slow readers the server disconnected: those that saw the end,
 * and those whose server side is no longer established in
 * `/proc/net/tcp` (a server's close waits behind the unread bytes before its
 * FIN reaches a slow reader).
 */
async function crowdSockets(shards: Shards, port: number): Promise<CrowdSockets | undefined> {
  const answers = await shards.all<{ ports: number[]; ended: number }>({ op: "crowdPorts" });
  let table: string;
  try {
    table = await Deno.readTextFile("/proc/net/tcp");
  } catch {
    return undefined;
  }
  const serverSide = new Map<number, { state: string; tx: number }>();
  const clientSide = new Map<number, number>();
  for (const line of table.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 5) continue;
    const local = parseInt(fields[1]!.split(":")[1]!, 16);
    const remote = parseInt(fields[2]!.split(":")[1]!, 16);
    const [tx, rx] = fields[4]!.split(":").map((hex) => parseInt(hex, 16));
    if (local === port) serverSide.set(remote, { state: fields[3]!, tx: tx! });
    else if (remote === port) clientSide.set(local, rx!);
  }
  let disconnected = 0;
  let kernelBytes = 0;
  for (const answer of answers) {
    disconnected += answer.ended;
    for (const client of answer.ports) {
      const server = serverSide.get(client);
      // 01: established.
      if (server === undefined || server.state !== "01") disconnected++;
      kernelBytes += (server?.tx ?? 0) + (clientSide.get(client) ?? 0);
    }
  }
  return { disconnected, kernelBytes };
}

/** burst, paced, slow and crowd: every client sends, every other client receives. */
async function fanOut(options: LoadOptions, shards: Shards): Promise<Record<string, unknown>> {
  const { workload } = options;
  const burst = workload === "burst";
  const count = options.clients;
  const slow = workload === "slow";
  const total = count + (slow ? 1 : 0);
  const slowIndex = slow ? count : -1;
  const perClient = burst ? options.messages : Math.ceil(options.rate * options.duration) + 2;
  // The slow readers of `crowd` come after the others and take no part in the tally.
  const crowd = options.crowd;
  const all = Array.from({ length: total + crowd }, (_, i) => i);
  await shards.split(all, (indices) => ({
    op: "init",
    options,
    indices,
    total,
    slowIndex,
    perClient,
    crowdFrom: total,
  }));
  const step = options.protocol === "lines" ? 25 : total + crowd;
  const opened = await openAll(shards, options, total + crowd, step, false);
  const notes = [...opened.notes];
  if (opened.failed > 0) {
    notes.push(`${opened.failed} of ${total + crowd} clients could not join`);
  }
  const before = await shards.status();
  const receivers = before.readers;
  if (receivers < 2) {
    return { ok: false, error: `only ${receivers} clients joined`, errors: opened.errors };
  }
  let { seen } = await shards.sync(clock() + 30_000);
  let fill: Record<string, unknown> | undefined;
  if (!burst) {
    fill = await warmUp(shards, options, receivers);
    if (fill.note) notes.push(fill.note as string);
    ({ seen } = await shards.sync(clock() + 10_000));
  }
  if (seen < receivers) notes.push(`only ${seen} of ${receivers} clients saw the start marker`);
  await sleep(200);

  const crowdAtStart = crowd > 0 ? await crowdSockets(shards, options.port) : undefined;
  const t0 = clock() + 50;
  const measureS = burst ? options.timeoutS : options.duration;
  await shards.all({ op: "start", t0, sendDeadline: t0 + measureS * 1000 });
  await sleep(t0 - clock());
  const cpuBefore = cpuTicks();
  event("start", { clients: receivers });
  const hardDeadline = t0 + (burst ? options.timeoutS : options.duration + options.timeoutS) *
      1000;
  const { outcome, status } = await settle(shards, receivers, options.quietMs, hardDeadline);
  const end = clock();
  event("end", { outcome });
  const cpuAfter = cpuTicks();
  if (outcome === "deadline") {
    notes.push(
      status.sendersDone >= status.senders
        ? `deliveries still arriving when the run was cut off`
        : `senders still blocked when the run was cut off`,
    );
  }
  const tallies = await shards.all<ShardTally>({ op: "finish" });
  let uniqueTotal = 0;
  for (const tally of tallies) uniqueTotal += tally.latencies.length;
  const latencies = new Float64Array(uniqueTotal);
  let offset = 0;
  for (const tally of tallies) {
    latencies.set(tally.latencies, offset);
    offset += tally.latencies.length;
  }
  latencies.sort();
  const sum = (key: "duplicates" | "reordered" | "garbled" | "stale" | "received" | "byes") =>
    tallies.reduce((total, tally) => total + tally[key], 0);
  const lastAt = Math.max(...tallies.map((tally) => tally.lastAt)) / 1000;
  const sent = tallies.reduce((total, tally) => total + tally.sent, 0);
  const expected = sent * (receivers - 1);
  const firstToLast = lastAt > t0 ? lastAt - t0 : NaN;
  const stillOpen = tallies.reduce((total, tally) => total + tally.readers, 0);
  if (stillOpen < receivers) {
    notes.push(`${receivers - stillOpen} clients were disconnected by the server`);
  }
  let slowClient: Record<string, unknown> | undefined;
  if (slow) {
    const answers = await shards.all<{ joined: boolean; closed?: boolean; bytes?: number }>({
      op: "drainSlow",
      ms: 3000,
    });
    const answer = answers.find((one) => one.joined);
    slowClient = answer
      ? {
        joined: true,
        disconnectedByServer: answer.closed,
        bytesWaitingForIt: answer.bytes,
      }
      : { joined: false };
  }
  const crowdStatus = crowd > 0 ? await shards.status() : undefined;
  const crowdAtEnd = crowd > 0 ? await crowdSockets(shards, options.port) : undefined;
  await shards.all({ op: "close" });
  const result: Record<string, unknown> = {
    ok: true,
    clients: receivers,
    threads: shards.handles.length,
    setupMs: round(opened.setupMs, 0),
    sent,
    expected,
    deliveries: latencies.length,
    received: sum("received"),
    lost: Math.max(0, expected - latencies.length),
    duplicates: sum("duplicates"),
    reordered: sum("reordered"),
    garbled: sum("garbled"),
    stale: sum("stale"),
    durationMs: round(firstToLast, 1),
    deliveriesPerSecond: Number.isFinite(firstToLast) && firstToLast > 0
      ? Math.round(latencies.length / (firstToLast / 1000))
      : null,
    p50Ms: round(percentile(latencies, 0.5), 3),
    p99Ms: round(percentile(latencies, 0.99), 3),
    maxMs: round(percentile(latencies, 1), 3),
    outcome,
    measureMs: round(end - t0, 0),
    generatorCpuMs: Number.isFinite(cpuBefore) ? (cpuAfter - cpuBefore) * 10 : null,
    notes,
  };
  if (!burst) result.sendRate = round(sent / receivers / options.duration, 2);
  const byes = sum("byes");
  if (byes > 0) result.byes = byes;
  if (slowClient) result.slowClient = slowClient;
  if (crowdStatus) {
    result.crowd = {
      readers: crowd,
      joined: crowdStatus.crowdJoined,
      disconnectedByServer: crowdAtEnd?.disconnected ?? crowdStatus.crowdClosed,
      disconnectedBeforeStart: crowdAtStart?.disconnected ?? null,
      sawTheEnd: crowdStatus.crowdClosed,
      kernelBytesAtStart: crowdAtStart?.kernelBytes ?? null,
      kernelBytesAtEnd: crowdAtEnd?.kernelBytes ?? null,
      bytesRead: crowdStatus.crowdBytes,
      readBytes: options.crowdReadBytes,
      readEveryMs: options.crowdReadEveryMs,
    };
  }
  if (fill) result.warmUp = fill;
  return result;
}

/** Bytes of warm-up text every client receives before a paced run. */
const WARM_UP_BYTES = 3_500_000;

/** Bytes a warm-up line takes on the wire, by protocol. */
const FILLER_OVERHEAD: Record<Protocol, number> = {
  chat: 110,
  irc: 40,
  lines: 10,
  text: 22,
  ws: 110,
};

/**
 * Before `paced` and `slow`, every client sends warm-up lines, spread over
 * `--warm-up-ms` (3 s), until about 3.5 MB have gone to each receiver. Socket buffers on loopback hold about
 * 4 MB for a client that never reads, so this brings the `slow` client close
 * to the point where a server has to choose between blocking, buffering and
 * disconnecting it, which then happens during the measured 10 s; `paced`
 * gets the same warm-up so that the two compare.
 */
async function warmUp(
  shards: Shards,
  options: LoadOptions,
  receivers: number,
): Promise<Record<string, unknown>> {
  const lineBytes = FILLER_BYTES + FILLER_OVERHEAD[options.protocol];
  const perClient = Math.ceil(WARM_UP_BYTES / lineBytes / receivers);
  await shards.all({ op: "fillReset" });
  const began = clock();
  const answers = await shards.all<{ complete: boolean }>({
    op: "fill",
    perClient,
    spreadMs: options.warmUpMs,
    deadline: began + options.warmUpMs + 12_000,
  });
  const written = answers.every((answer) => answer.complete);
  let status = await shards.status();
  const want = () => status.fillSent * (receivers - 1);
  let last = -1;
  let lastChange = clock();
  while (status.fillReceived < want() && clock() < began + options.warmUpMs + 17_000) {
    if (status.fillReceived !== last) {
      last = status.fillReceived;
      lastChange = clock();
    } else if (clock() - lastChange > 2000) {
      break;
    }
    await sleep(25);
    status = await shards.status();
  }
  const through = status.fillReceived >= want();
  return {
    perClient,
    sent: status.fillSent,
    received: status.fillReceived,
    ms: Math.round(clock() - began),
    note: written && through
      ? undefined
      : `the warm-up did not get through: ${status.fillSent} of ${
        perClient * receivers
      } lines written, ${status.fillReceived} of ${want()} received`,
  };
}

async function waitForStdin(ms: number): Promise<void> {
  const reader = Deno.stdin.readable.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    reader.read().catch(() => {}),
    new Promise<void>((resolve) => timer = setTimeout(resolve, ms)),
  ]);
  clearTimeout(timer);
  reader.releaseLock();
}

/**
 * idle: open many connections, hold them while the runner measures, close
 * them. For plain-text relays a connection counts as held once a broadcast
 * reaches it; they are opened in steps of 250, each checked that way, and the
 * ramp stops at the first step that fails.
 */
async function idle(options: LoadOptions, shards: Shards): Promise<Record<string, unknown>> {
  const total = options.connections;
  const all = Array.from({ length: total }, (_, i) => i);
  await shards.split(all, (indices) => ({
    op: "init",
    options,
    indices,
    total,
    slowIndex: -1,
    perClient: 1,
    crowdFrom: total,
  }));
  const lines = options.protocol === "lines";
  const opened = await openAll(shards, options, total, lines ? 250 : total, true);
  const notes = [...opened.notes];
  event("holding", { held: opened.held, connections: total });
  await waitForStdin(options.holdS * 1000);
  const status = await shards.status();
  await shards.all({ op: "close" });
  if (opened.failed > 0) notes.push(`${opened.failed} connections failed`);
  return {
    ok: true,
    connections: total,
    held: opened.held,
    peakHeld: opened.peak,
    heldAtRelease: status.open,
    checkedBy: lines ? "broadcast" : "handshake",
    setupMs: round(opened.setupMs, 0),
    failed: opened.failed,
    errors: opened.errors,
    bytesRead: status.bytesRead,
    notes,
  };
}

if (import.meta.main) {
  const options = readOptions(Deno.args);
  const began = clock();
  const shards = new Shards(options.threads);
  let result: Record<string, unknown>;
  try {
    result = options.workload === "idle"
      ? await idle(options, shards)
      : await fanOut(options, shards);
  } catch (error) {
    result = { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
  console.log(JSON.stringify({
    protocol: options.protocol,
    workload: options.workload,
    ...result,
    wallMs: Math.round(clock() - began),
  }));
  shards.terminate();
  Deno.exit(0);
}
