/**
 * The benchmark's load generator: one process opens every client on
 * 127.0.0.1, drives one workload against one server and prints one JSON line
 * with the result on stdout. Progress events (`@event {...}`) go to stderr,
 * where `run.ts` picks them up to sample the server at the right moments.
 *
 * Every message text is 64 ASCII bytes that carry the sender, its sequence
 * number and the send time, so a receiver computes latency, loss and
 * reordering on its own:
 *
 * ```
 * ^000012.0000003.000000012345678.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
 *  sender  seq     sent at (µs)
 * ```
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

type Protocol = "lines" | "chat" | "irc";
type Workload = "burst" | "paced" | "idle" | "slow";

const HOST = "127.0.0.1";
const PAYLOAD_BYTES = 64;
const CARET = 0x5e;
const DOT = 0x2e;
const NL = 0x0a;
const CR = 0x0d;
const SYNC = "%sync";
const FILL = "x".repeat(PAYLOAD_BYTES);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const CHAT_WELCOME = encoder.encode('{"type":"welcome"');
const CHAT_ERROR = encoder.encode('{"type":"error"');
const CHAT_BYE = encoder.encode('{"type":"bye"');
const IRC_PING = encoder.encode("PING");
const IRC_ERROR = encoder.encode("ERROR");

interface Options {
  protocol: Protocol;
  port: number;
  workload: Workload;
  clients: number;
  messages: number;
  rate: number;
  duration: number;
  connections: number;
  quietMs: number;
  timeoutS: number;
  connectTimeoutS: number;
  holdS: number;
  concurrency: number;
  seed: number;
}

function usage(): never {
  console.error(
    `Usage: deno run -A bench/load.ts --protocol lines|chat|irc --port N --workload burst|paced|idle|slow
  [--clients N] [--messages N] [--rate N] [--duration S] [--connections N]
  [--quiet-ms N] [--timeout S] [--connect-timeout S] [--hold S] [--concurrency N] [--seed N]`,
  );
  Deno.exit(2);
}

function readOptions(args: string[]): Options {
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
      "quiet-ms": { type: "string" },
      timeout: { type: "string" },
      "connect-timeout": { type: "string" },
      hold: { type: "string" },
      concurrency: { type: "string" },
      seed: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) usage();
  const protocol = values.protocol as Protocol;
  const workload = values.workload as Workload;
  if (!["lines", "chat", "irc"].includes(protocol)) usage();
  if (!["burst", "paced", "idle", "slow"].includes(workload)) usage();
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
    timeoutS: number(values.timeout, 90),
    connectTimeoutS: number(values["connect-timeout"], 60),
    holdS: number(values.hold, 30),
    concurrency: number(values.concurrency, workload === "idle" ? 200 : 50),
    seed: number(values.seed, 1),
  };
}

function event(name: string, fields: Record<string, unknown> = {}): void {
  console.error(`@event ${JSON.stringify({ event: name, at: performance.now(), ...fields })}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

function pad(value: number, width: number): string {
  return String(value).padStart(width, "0");
}

/** The 64-byte message text. */
function payload(sender: number, seq: number, micros: number): string {
  const head = `^${pad(sender, 6)}.${pad(seq, 7)}.${pad(Math.round(micros), 15)}.`;
  return head + FILL.slice(head.length);
}

function digits(bytes: Uint8Array, at: number, count: number): number {
  let value = 0;
  for (let i = at; i < at + count; i++) {
    const digit = bytes[i]! - 48;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

function startsWith(bytes: Uint8Array, at: number, end: number, prefix: Uint8Array): boolean {
  if (end - at < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    if (bytes[at + i] !== prefix[i]) return false;
  }
  return true;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    offset += await conn.write(offset === 0 ? bytes : bytes.subarray(offset));
  }
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
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

/** Counts deliveries, latency, loss, duplicates and reordering. */
class Tally {
  readonly clients: number;
  readonly maxSeq: number;
  #lastSeq: Int32Array;
  #seen: Uint8Array;
  latencies: Float64Array;
  received = 0;
  unique = 0;
  duplicates = 0;
  reordered = 0;
  garbled = 0;
  lastAt = 0;

  constructor(clients: number, maxSeq: number, expected: number) {
    this.clients = clients;
    this.maxSeq = maxSeq;
    this.#lastSeq = new Int32Array(clients * clients).fill(-1);
    this.#seen = new Uint8Array(clients * clients * maxSeq);
    this.latencies = new Float64Array(Math.max(1024, expected));
  }

  record(receiver: number, sender: number, seq: number, micros: number, now: number): void {
    this.received++;
    if (sender >= this.clients || seq >= this.maxSeq) {
      this.garbled++;
      return;
    }
    const pair = receiver * this.clients + sender;
    const slot = pair * this.maxSeq + seq;
    if (this.#seen[slot] !== 0) {
      this.duplicates++;
      return;
    }
    this.#seen[slot] = 1;
    if (seq < this.#lastSeq[pair]!) this.reordered++;
    else this.#lastSeq[pair] = seq;
    if (this.unique === this.latencies.length) {
      const grown = new Float64Array(this.latencies.length * 2);
      grown.set(this.latencies);
      this.latencies = grown;
    }
    this.latencies[this.unique++] = now * 1000 - micros;
    this.lastAt = now;
  }

  percentiles(): { p50: number | null; p99: number | null; max: number | null } {
    if (this.unique === 0) return { p50: null, p99: null, max: null };
    const sorted = this.latencies.subarray(0, this.unique).sort();
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    return { p50: at(0.5) / 1000, p99: at(0.99) / 1000, max: sorted[sorted.length - 1]! / 1000 };
  }
}

/** State shared by every client of one run. */
interface Shared {
  options: Options;
  tally: Tally | undefined;
  started: boolean;
  /** The first marker round of the check in progress, or 0. */
  syncFrom: number;
  /** The last marker round sent. */
  syncRound: number;
  syncWaiters: Set<() => void>;
}

class Client {
  readonly index: number;
  readonly name: string;
  readonly shared: Shared;
  readonly bufferBytes: number;
  conn: Deno.TcpConn | undefined;
  open = false;
  isReady = false;
  readonly ready: PromiseWithResolvers<void> = Promise.withResolvers();
  /** Stops reading once the handshake is done (the slow consumer). */
  stopAfterReady = false;
  /** IRC: join the channel after registering. */
  joinChannel = true;
  /** The last marker round this client saw. */
  synced = 0;
  gotBye = false;
  closedByPeer = false;
  sent = 0;
  bytesRead = 0;
  reading: Promise<void> = Promise.resolve();
  #nextId = 1;

  constructor(index: number, shared: Shared, bufferBytes: number) {
    this.index = index;
    this.name = `c${index}`;
    this.shared = shared;
    this.bufferBytes = bufferBytes;
    // A failed handshake is reported through the promise only when awaited.
    this.ready.promise.catch(() => {});
  }

  async connect(timeoutMs: number): Promise<void> {
    const connecting = Deno.connect({ hostname: HOST, port: this.shared.options.port });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("connect timed out")), timeoutMs);
    });
    try {
      this.conn = await Promise.race([connecting, timeout]);
    } catch (error) {
      connecting.then((conn) => conn.close(), () => {});
      throw error;
    } finally {
      clearTimeout(timer);
    }
    this.open = true;
    try {
      this.conn.setNoDelay(true);
    } catch {
      // Not important.
    }
    this.reading = this.#readLoop();
    const protocol = this.shared.options.protocol;
    if (protocol === "chat") {
      await this.write(
        encoder.encode(`{"type":"hello","id":0,"v":1,"name":"${this.name}"}\n`),
      );
    } else if (protocol === "irc") {
      await this.write(
        encoder.encode(`NICK ${this.name}\r\nUSER ${this.name} 0 * :${this.name}\r\n`),
      );
    } else {
      this.#markReady();
    }
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (!this.open) throw new Error("closed");
    await writeAll(this.conn!, bytes);
  }

  frame(text: string): Uint8Array {
    switch (this.shared.options.protocol) {
      case "chat":
        return encoder.encode(
          `{"type":"send","id":${this.#nextId++},"room":"#lobby","text":"${text}"}\n`,
        );
      case "irc":
        return encoder.encode(`PRIVMSG #bench :${text}\r\n`);
      case "lines":
        return encoder.encode(`${text}\n`);
    }
  }

  async sendPayload(seq: number): Promise<void> {
    const bytes = this.frame(payload(this.index, seq, performance.now() * 1000));
    await this.write(bytes);
    this.sent++;
  }

  close(): void {
    if (!this.conn) return;
    const conn = this.conn;
    this.conn = undefined;
    this.open = false;
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }

  #markReady(): void {
    if (this.isReady) return;
    this.isReady = true;
    this.ready.resolve();
  }

  #fail(message: string): void {
    if (!this.isReady) this.ready.reject(new Error(message));
  }

  #sawSync(round: number): void {
    if (this.synced >= round) return;
    this.synced = round;
    for (const wake of this.shared.syncWaiters) wake();
  }

  /** Handles a line that carries no payload; `complete` is false for the head of a long line. */
  #control(bytes: Uint8Array, start: number, end: number, complete: boolean): void {
    const protocol = this.shared.options.protocol;
    if (protocol === "chat") {
      if (!this.isReady) {
        if (startsWith(bytes, start, end, CHAT_WELCOME)) return this.#markReady();
        if (startsWith(bytes, start, end, CHAT_ERROR)) {
          return this.#fail(decoder.decode(bytes.subarray(start, Math.min(end, start + 200))));
        }
      } else if (startsWith(bytes, start, end, CHAT_BYE)) {
        this.gotBye = true;
      }
    } else if (protocol === "irc") {
      if (startsWith(bytes, start, end, IRC_PING)) {
        const token = decoder.decode(bytes.subarray(start + 4, end));
        this.write(encoder.encode(`PONG${token}\r\n`)).catch(() => {});
        return;
      }
      if (startsWith(bytes, start, end, IRC_ERROR)) {
        this.gotBye = true;
        return this.#fail(decoder.decode(bytes.subarray(start, Math.min(end, start + 200))));
      }
      if (!this.isReady && bytes[start] === 0x3a) {
        const space = bytes.indexOf(0x20, start);
        if (space !== -1 && space + 4 < end && bytes[space + 4] === 0x20) {
          const code = digits(bytes, space + 1, 3);
          if (code === 1) {
            if (this.joinChannel) this.write(encoder.encode("JOIN #bench\r\n")).catch(() => {});
            else this.#markReady();
          } else if (code === 366) {
            this.#markReady();
          } else if (code >= 400 && code < 600) {
            this.#fail(decoder.decode(bytes.subarray(start, Math.min(end, start + 200))));
          }
        }
      }
    }
    const from = this.shared.syncFrom;
    if (from > this.synced && complete && end - start >= SYNC.length) {
      const line = decoder.decode(bytes.subarray(start, Math.min(end, start + 400)));
      const at = line.indexOf(SYNC);
      if (at !== -1) {
        const round = parseInt(line.slice(at + SYNC.length), 10);
        if (round >= from) this.#sawSync(round);
      }
    }
  }

  async #readLoop(): Promise<void> {
    const conn = this.conn!;
    const buffer = new Uint8Array(this.bufferBytes);
    const half = buffer.length >> 1;
    let carry = 0;
    let skipping = false;
    try {
      while (true) {
        if (this.stopAfterReady && this.isReady) return;
        const count = await conn.read(carry === 0 ? buffer : buffer.subarray(carry));
        if (count === null) {
          this.closedByPeer = true;
          break;
        }
        this.bytesRead += count;
        const now = performance.now();
        const end = carry + count;
        const view = end === buffer.length ? buffer : buffer.subarray(0, end);
        let start = 0;
        let from = carry;
        if (skipping) {
          const newline = view.indexOf(NL);
          if (newline === -1) {
            carry = 0;
            continue;
          }
          skipping = false;
          start = newline + 1;
          from = start;
        }
        let caret = -1;
        let newline = view.indexOf(NL, from);
        const tally = this.shared.tally;
        while (newline !== -1) {
          let lineEnd = newline;
          if (lineEnd > start && view[lineEnd - 1] === CR) lineEnd--;
          if (caret < start) {
            caret = view.indexOf(CARET, start);
            if (caret === -1) caret = end;
          }
          if (
            caret + PAYLOAD_BYTES <= lineEnd && view[caret + 7] === DOT &&
            view[caret + 15] === DOT && view[caret + 31] === DOT
          ) {
            const sender = digits(view, caret + 1, 6);
            const seq = digits(view, caret + 8, 7);
            const micros = digits(view, caret + 16, 15);
            if (tally && sender >= 0 && seq >= 0 && micros >= 0) {
              tally.record(this.index, sender, seq, micros, now);
            } else if (tally) {
              tally.garbled++;
            }
          } else {
            this.#control(view, start, lineEnd, true);
          }
          start = newline + 1;
          newline = view.indexOf(NL, start);
        }
        const rest = end - start;
        if (rest === 0) {
          carry = 0;
        } else if (rest > half) {
          // A line too long to be a message (a member list): look at its head, skip the rest.
          this.#control(view, start, end, false);
          skipping = true;
          carry = 0;
        } else {
          if (start > 0) buffer.copyWithin(0, start, end);
          carry = rest;
        }
      }
    } catch {
      this.closedByPeer = true;
    }
    this.open = false;
    this.#fail("connection closed during the handshake");
  }
}

interface Joined {
  clients: Client[];
  failed: number;
  errors: Record<string, number>;
  setupMs: number;
}

function countError(errors: Record<string, number>, error: unknown): void {
  const text = (error instanceof Error ? error.message : String(error))
    .replace(/\d+/g, "N").slice(0, 120);
  errors[text] = (errors[text] ?? 0) + 1;
}

/** Opens clients with at most `concurrency` handshakes in flight, until `deadline`. */
async function join(
  clients: Client[],
  concurrency: number,
  deadline: number,
  progress?: (ready: number) => void,
): Promise<Joined> {
  const begin = performance.now();
  const errors: Record<string, number> = {};
  const joined: Client[] = [];
  let failed = 0;
  let next = 0;
  const worker = async () => {
    while (next < clients.length) {
      const client = clients[next++]!;
      const left = deadline - performance.now();
      if (left <= 0) {
        failed++;
        countError(errors, "deadline passed before connecting");
        continue;
      }
      try {
        await client.connect(Math.min(left, 10_000));
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          client.ready.promise,
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new Error("handshake timed out")),
              Math.max(1, deadline - performance.now()),
            );
          }),
        ]).finally(() => clearTimeout(timer));
        joined.push(client);
        if (progress && joined.length % 1000 === 0) progress(joined.length);
      } catch (error) {
        failed++;
        countError(errors, error);
        client.close();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, clients.length) }, worker));
  joined.sort((a, b) => a.index - b.index);
  return { clients: joined, failed, errors, setupMs: performance.now() - begin };
}

/**
 * One client sends a marker line, again every 500 ms (a relay only sends a
 * line to the clients it has accepted so far); resolves with how many of the
 * others saw one, once all have or at `deadline`.
 */
async function sync(
  shared: Shared,
  sender: Client,
  receivers: Client[],
  deadline: number,
): Promise<number> {
  const from = shared.syncRound + 1;
  shared.syncFrom = from;
  const waiting = receivers.filter((client) => client !== sender && !client.stopAfterReady);
  const done = () => waiting.every((client) => client.synced >= from || !client.open);
  let resend = 0;
  while (!done() && performance.now() < deadline) {
    if (performance.now() >= resend) {
      resend = performance.now() + 500;
      try {
        await sender.write(sender.frame(`${SYNC}${++shared.syncRound}.`));
      } catch {
        break;
      }
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(wake, 50);
      function wake() {
        clearTimeout(timer);
        shared.syncWaiters.delete(wake);
        resolve();
      }
      shared.syncWaiters.add(wake);
    });
  }
  shared.syncFrom = 0;
  return waiting.filter((client) => client.synced >= from).length;
}

interface Opened {
  connected: Client[];
  held: number;
  failed: number;
  errors: Record<string, number>;
  setupMs: number;
  notes: string[];
}

/**
 * Opens clients in steps of `step`. Plain-text relays say nothing on
 * connect, so for them each step is checked with a broadcast that must reach
 * every open client (connections still waiting in the listen backlog do not
 * count); they are opened one at a time. With `stopOnShortfall`, the first
 * step that fails the check ends the ramp.
 */
async function openAll(
  shared: Shared,
  clients: Client[],
  step: number,
  deadline: number,
  stopOnShortfall: boolean,
  progress?: (fields: Record<string, number>) => void,
): Promise<Opened> {
  const verify = shared.options.protocol === "lines";
  const concurrency = verify ? 1 : shared.options.concurrency;
  const opened: Opened = { connected: [], held: 0, failed: 0, errors: {}, setupMs: 0, notes: [] };
  const begin = performance.now();
  for (let offset = 0; offset < clients.length; offset += step) {
    const joined = await join(
      clients.slice(offset, offset + step),
      concurrency,
      deadline,
      progress && ((ready) => progress({ ready: opened.connected.length + ready })),
    );
    opened.connected.push(...joined.clients);
    opened.failed += joined.failed;
    for (const [text, count] of Object.entries(joined.errors)) {
      opened.errors[text] = (opened.errors[text] ?? 0) + count;
    }
    const open = opened.connected.filter((client) => client.open);
    if (!verify) {
      opened.held = open.length;
      continue;
    }
    const readers = open.filter((client) => !client.stopAfterReady);
    const seen = readers.length > 0
      ? await sync(shared, readers[0]!, readers, Math.min(deadline, performance.now() + 15_000)) +
        1
      : 0;
    opened.held = seen + (open.length - readers.length);
    progress?.({ verified: seen, open: open.length });
    if (seen < readers.length || joined.failed > 0 || open.length < opened.connected.length) {
      opened.notes.push(
        `after ${Math.min(clients.length, offset + step)} connects: ${open.length} open, ${seen} ` +
          `reached by a broadcast`,
      );
      if (stopOnShortfall) break;
    }
    if (performance.now() >= deadline) break;
  }
  opened.setupMs = performance.now() - begin;
  return opened;
}

/** Waits until every expected delivery arrived, nothing arrived for `quietMs`, or `deadline`. */
async function settle(
  tally: Tally,
  expected: () => number,
  sendersDone: () => boolean,
  quietMs: number,
  deadline: number,
): Promise<"complete" | "quiet" | "deadline"> {
  let lastCount = -1;
  let lastChange = performance.now();
  while (true) {
    const now = performance.now();
    if (sendersDone() && tally.unique >= expected()) return "complete";
    if (tally.received !== lastCount) {
      lastCount = tally.received;
      lastChange = now;
    } else if (sendersDone() && now - lastChange >= quietMs) {
      return "quiet";
    }
    if (now >= deadline) return "deadline";
    await sleep(20);
  }
}

function round(value: number | null, digits = 2): number | null {
  if (value === null || !Number.isFinite(value)) return null;
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

async function drainSlow(client: Client, ms: number): Promise<{ closed: boolean; bytes: number }> {
  if (!client.conn || !client.open) return { closed: true, bytes: 0 };
  const conn = client.conn;
  const buffer = new Uint8Array(256 * 1024);
  let bytes = 0;
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const result = await Promise.race([
      conn.read(buffer).catch(() => null),
      new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), Math.max(1, deadline - performance.now()));
      }),
    ]).finally(() => clearTimeout(timer));
    if (result === "timeout") return { closed: false, bytes };
    if (result === null) return { closed: true, bytes };
    bytes += result;
  }
  return { closed: false, bytes };
}

/** burst, paced and slow: clients send, everyone else receives. */
async function fanOut(options: Options): Promise<Record<string, unknown>> {
  const { workload } = options;
  const count = options.clients;
  const slow = workload === "slow";
  const total = count + (slow ? 1 : 0);
  const burst = workload === "burst";
  const perClient = burst ? options.messages : Math.ceil(options.rate * options.duration) + 2;
  const shared: Shared = {
    options,
    tally: undefined,
    started: false,
    syncFrom: 0,
    syncRound: 0,
    syncWaiters: new Set(),
  };
  const clients = Array.from({ length: total }, (_, i) => new Client(i, shared, 64 * 1024));
  const slowClient = slow ? clients[count]! : undefined;
  if (slowClient) slowClient.stopAfterReady = true;
  const setupDeadline = performance.now() + options.connectTimeoutS * 1000;
  const step = options.protocol === "lines" ? 25 : total;
  const opened = await openAll(shared, clients, step, setupDeadline, false);
  const active = opened.connected.filter((client) => client !== slowClient && client.open);
  const slowJoined = slowClient !== undefined && opened.connected.includes(slowClient);
  const notes: string[] = [...opened.notes];
  if (opened.failed > 0) {
    notes.push(`${opened.failed} of ${total} clients could not join`);
  }
  if (active.length < 2) {
    return {
      ok: false,
      error: `only ${active.length} clients joined`,
      joined: opened.connected.length,
      errors: opened.errors,
    };
  }
  const synced = await sync(shared, active[0]!, active, performance.now() + 30_000);
  if (synced < active.length - 1) {
    notes.push(`only ${synced} of ${active.length - 1} receivers saw the start marker`);
  }
  await sleep(200);

  const expectedUpperBound = active.length * perClient * (active.length - 1);
  const tally = new Tally(total, perClient, Math.min(expectedUpperBound, 4_000_000));
  shared.tally = tally;
  shared.started = true;
  const cpuBefore = cpuTicks();
  const t0 = performance.now();
  event("start", { clients: active.length });
  let sendersFinished = 0;
  const sendDeadline = t0 + (burst ? options.timeoutS * 1000 : options.duration * 1000);
  const random = mulberry32(options.seed);
  const interval = 1000 / options.rate;
  const senders = active.map(async (client) => {
    try {
      if (burst) {
        for (let seq = 0; seq < options.messages; seq++) {
          if (!client.open || performance.now() > sendDeadline) break;
          await client.sendPayload(seq);
        }
      } else {
        const offset = random() * interval;
        for (let seq = 0;; seq++) {
          const due = t0 + offset + seq * interval;
          if (due >= sendDeadline || seq >= perClient) break;
          const wait = due - performance.now();
          if (wait > 0) await sleep(wait);
          if (!client.open) break;
          await client.sendPayload(seq);
        }
      }
    } catch {
      // The connection broke; what was sent is counted.
    } finally {
      sendersFinished++;
    }
  });
  const allSent = Promise.all(senders);
  const expected = () => {
    let sum = 0;
    for (const client of active) sum += client.sent * (active.length - 1);
    return sum;
  };
  const hardDeadline = t0 + (burst ? options.timeoutS : options.duration + options.timeoutS) *
      1000;
  const outcome = await settle(
    tally,
    expected,
    () => sendersFinished === active.length,
    options.quietMs,
    hardDeadline,
  );
  const sendEnd = performance.now();
  event("end", { outcome });
  const cpuAfter = cpuTicks();
  if (outcome === "deadline") {
    notes.push(
      sendersFinished === active.length
        ? `deliveries still arriving after ${options.timeoutS} s`
        : `senders still blocked after ${
          burst ? options.timeoutS : options.duration + options.timeoutS
        } s`,
    );
  }
  void allSent;
  const want = expected();
  const { p50, p99, max } = tally.percentiles();
  const firstToLast = tally.lastAt > t0 ? tally.lastAt - t0 : NaN;
  const sent = active.reduce((sum, client) => sum + client.sent, 0);
  const closedDuring = active.filter((client) => !client.open).length;
  if (closedDuring > 0) notes.push(`${closedDuring} clients were disconnected by the server`);
  const byes = active.filter((client) => client.gotBye).length;
  let slowResult: Record<string, unknown> | undefined;
  if (slowClient) {
    const drained = slowJoined ? await drainSlow(slowClient, 3000) : { closed: true, bytes: 0 };
    slowResult = {
      joined: slowJoined,
      disconnectedByServer: slowJoined ? drained.closed : null,
      bytesWaitingForIt: drained.bytes,
    };
  }
  for (const client of clients) client.close();
  const result: Record<string, unknown> = {
    ok: true,
    clients: active.length,
    setupMs: round(opened.setupMs, 0),
    sent,
    expected: want,
    deliveries: tally.unique,
    received: tally.received,
    lost: Math.max(0, want - tally.unique),
    duplicates: tally.duplicates,
    reordered: tally.reordered,
    garbled: tally.garbled,
    durationMs: round(firstToLast, 1),
    deliveriesPerSecond: Number.isFinite(firstToLast) && firstToLast > 0
      ? Math.round(tally.unique / (firstToLast / 1000))
      : null,
    p50Ms: round(p50, 3),
    p99Ms: round(p99, 3),
    maxMs: round(max, 3),
    outcome,
    measureMs: round(sendEnd - t0, 0),
    generatorCpuMs: Number.isFinite(cpuBefore) ? (cpuAfter - cpuBefore) * 10 : null,
    notes,
  };
  if (!burst) {
    result.sendRate = round(sent / active.length / options.duration, 2);
  }
  if (byes > 0) result.byes = byes;
  if (slowResult) result.slowClient = slowResult;
  return result;
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
async function idle(options: Options): Promise<Record<string, unknown>> {
  const shared: Shared = {
    options,
    tally: undefined,
    started: false,
    syncFrom: 0,
    syncRound: 0,
    syncWaiters: new Set(),
  };
  const bufferBytes = options.protocol === "chat" ? 16 * 1024 : 4 * 1024;
  const clients = Array.from(
    { length: options.connections },
    (_, i) => new Client(i, shared, bufferBytes),
  );
  for (const client of clients) client.joinChannel = false;
  const lines = options.protocol === "lines";
  const step = lines ? 250 : options.connections;
  const deadline = performance.now() + options.connectTimeoutS * 1000;
  const opened = await openAll(
    shared,
    clients,
    step,
    deadline,
    true,
    (fields) => event("progress", fields),
  );
  const { connected, held, failed, errors, setupMs } = opened;
  const notes = [...opened.notes];
  event("holding", { held, connections: options.connections });
  await waitForStdin(options.holdS * 1000);
  const stillOpen = connected.filter((client) => client.open).length;
  for (const client of clients) client.close();
  if (failed > 0) notes.push(`${failed} connections failed`);
  return {
    ok: true,
    connections: options.connections,
    held,
    heldAtRelease: stillOpen,
    checkedBy: lines ? "broadcast" : "handshake",
    setupMs: round(setupMs, 0),
    failed,
    errors,
    bytesRead: connected.reduce((sum, client) => sum + client.bytesRead, 0),
    notes,
  };
}

if (import.meta.main) {
  const options = readOptions(Deno.args);
  const began = performance.now();
  let result: Record<string, unknown>;
  try {
    result = options.workload === "idle" ? await idle(options) : await fanOut(options);
  } catch (error) {
    result = { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
  console.log(JSON.stringify({
    protocol: options.protocol,
    workload: options.workload,
    ...result,
    wallMs: Math.round(performance.now() - began),
  }));
  Deno.exit(0);
}
