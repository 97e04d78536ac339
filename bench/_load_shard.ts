/**
 * One thread of the load generator: it owns a share of the clients, reads
 * and parses what they receive, and answers the commands of `load.ts`.
 * Clients of every thread take part in the same chat; only the bookkeeping
 * is split.
 *
 * @module
 */

/** How clients talk to the server. */
export type Protocol = "lines" | "chat" | "irc" | "text" | "ws";
/** What the clients do. */
export type Workload = "burst" | "paced" | "idle" | "slow" | "crowd";

/** The generator's settings, shared by every thread. */
export interface LoadOptions {
  protocol: Protocol;
  port: number;
  workload: Workload;
  clients: number;
  messages: number;
  rate: number;
  duration: number;
  connections: number;
  quietMs: number;
  warmUpMs: number;
  timeoutS: number;
  connectTimeoutS: number;
  holdS: number;
  concurrency: number;
  threads: number;
  seed: number;
  /** `crowd`: how many slow readers join besides the paced clients. */
  crowd: number;
  /** `crowd`: bytes a slow reader takes at each read. */
  crowdReadBytes: number;
  /** `crowd`: ms between a slow reader's reads. */
  crowdReadEveryMs: number;
}

/** A command from `load.ts` to a thread. */
export type ShardRequest =
  | {
    op: "init";
    options: LoadOptions;
    indices: number[];
    total: number;
    slowIndex: number;
    perClient: number;
    /** Clients from this index on are the slow readers of `crowd`. */
    crowdFrom: number;
  }
  | { op: "open"; indices: number[]; deadline: number; concurrency: number }
  | { op: "syncFrom"; from: number }
  | { op: "syncSend"; round: number }
  | { op: "status" }
  | { op: "fillReset" }
  | { op: "fill"; perClient: number; spreadMs: number; deadline: number }
  | { op: "start"; t0: number; sendDeadline: number }
  | { op: "finish" }
  | { op: "drainSlow"; ms: number }
  | { op: "crowdPorts" }
  | { op: "close" };

/** A thread's counters, as answered to `status`. */
export interface ShardStatus {
  connected: number;
  open: number;
  readers: number;
  synced: number;
  sent: number;
  sendersDone: number;
  senders: number;
  received: number;
  unique: number;
  lastAt: number;
  byes: number;
  bytesRead: number;
  fillSent: number;
  fillReceived: number;
  /** `crowd`: slow readers that joined. */
  crowdJoined: number;
  /** `crowd`: slow readers the server disconnected. */
  crowdClosed: number;
  /** `crowd`: bytes the slow readers took. */
  crowdBytes: number;
}

/** A thread's final tally, as answered to `finish`. */
export interface ShardTally extends ShardStatus {
  duplicates: number;
  reordered: number;
  garbled: number;
  stale: number;
  latencies: Float64Array;
}

const HOST = "127.0.0.1";
/** Length of every message text. */
export const PAYLOAD_BYTES = 64;
const CARET = 0x5e;
const LF = 0x0a;
const PERCENT = 0x25;
const LETTER_F = 0x66;
const DOT = 0x2e;
const NL = 0x0a;
const CR = 0x0d;
/** Start of the marker line used to check that every client is in. */
export const SYNC = "%sync";
const FILL = "x".repeat(PAYLOAD_BYTES);
/** Length of a warm-up line's text: short enough for IRC's 512-byte lines. */
export const FILLER_BYTES = 384;
const FILLER = "%fill " + "f".repeat(FILLER_BYTES - 6);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const CHAT_WELCOME = encoder.encode('{"type":"welcome"');
const CHAT_ERROR = encoder.encode('{"type":"error"');
const CHAT_BYE = encoder.encode('{"type":"bye"');
const CHAT_PING = encoder.encode('{"type":"ping"');
const CHAT_PONG = encoder.encode('{"type":"pong"}\n');
const IRC_PING = encoder.encode("PING");
const IRC_ERROR = encoder.encode("ERROR");
/** The plain-text door's line once a name is taken: "*** You are c1 in #lobby…". */
const TEXT_WELCOME = encoder.encode("*** You are ");
/** The plain-text door's notices, goodbyes among them. */
const TEXT_NOTICE = encoder.encode("*** ");
/** The plain-text door asking again: the name was refused. */
const TEXT_AGAIN = encoder.encode("Type another name");
/** The plain-text door's refusals. */
const TEXT_REFUSAL = encoder.encode("! ");

/**
 * Milliseconds since the epoch with sub-microsecond resolution, the same in
 * every thread of the process.
 */
export function clock(): number {
  return performance.timeOrigin + performance.now();
}

function sleepUntil(at: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, at - clock())));
}

function pad(value: number, width: number): string {
  return String(value).padStart(width, "0");
}

/**
 * The 64-byte message text: sender, sequence number and send time in
 * microseconds since the epoch.
 *
 * ```
 * ^000012.0000003.1795296177929286.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
 * ```
 */
export function payload(sender: number, seq: number, micros: number): string {
  const head = `^${pad(sender, 6)}.${pad(seq, 7)}.${pad(Math.round(micros), 16)}.`;
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

/** A small seeded generator, so paced runs send on the same schedule every time. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Counts deliveries, latency, duplicates and reordering for the receivers of one thread. */
class Tally {
  readonly total: number;
  readonly maxSeq: number;
  #lastSeq: Int32Array;
  #seen: Uint8Array;
  latencies: Float64Array;
  received = 0;
  unique = 0;
  duplicates = 0;
  reordered = 0;
  garbled = 0;
  /** Messages sent before this run started (history a server replays on join). */
  stale = 0;
  /** Send times before this, in µs since the epoch, are from an earlier run. */
  since = Infinity;
  lastAt = 0;

  constructor(total: number, maxSeq: number, expected: number) {
    this.total = total;
    this.maxSeq = maxSeq;
    this.#lastSeq = new Int32Array(total * total).fill(-1);
    this.#seen = new Uint8Array(total * total * maxSeq);
    this.latencies = new Float64Array(Math.max(1024, expected));
  }

  record(receiver: number, sender: number, seq: number, micros: number, nowMicros: number): void {
    if (micros < this.since) {
      this.stale++;
      return;
    }
    this.received++;
    if (sender >= this.total || seq >= this.maxSeq) {
      this.garbled++;
      return;
    }
    const pair = receiver * this.total + sender;
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
    this.latencies[this.unique++] = nowMicros - micros;
    this.lastAt = nowMicros;
  }
}

/** What the clients of one thread share. */
interface Shared {
  options: LoadOptions;
  tally: Tally | undefined;
  /** The first marker round of the check in progress, or 0. */
  syncFrom: number;
  /** Warm-up lines received. */
  fillReceived: number;
}

class Client {
  readonly index: number;
  readonly name: string;
  readonly shared: Shared;
  readonly bufferBytes: number;
  conn: Deno.TcpConn | undefined;
  /** With the `ws` protocol: the WebSocket, one frame per message. */
  socket: WebSocket | undefined;
  open = false;
  isReady = false;
  readonly ready: PromiseWithResolvers<void> = Promise.withResolvers();
  /** Stops reading once the handshake is done (the slow consumer). */
  stopAfterReady = false;
  /** IRC: join the channel after registering. */
  joinChannel = true;
  /** `crowd`: once in, takes `crowdReadBytes` every `crowdReadEveryMs` and parses nothing. */
  crowdReader = false;
  /** `crowd`: the server closed this slow reader's connection. */
  closedByServer = false;
  /** The last marker round this client saw. */
  synced = 0;
  gotBye = false;
  sent = 0;
  fillSent = 0;
  bytesRead = 0;
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
    if (this.shared.options.protocol === "ws") {
      return await (this.crowdReader
        ? this.#connectSlowWebSocket(timeoutMs)
        : this.#connectWebSocket(timeoutMs));
    }
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
    this.#readLoop();
    const protocol = this.shared.options.protocol;
    if (protocol === "chat") {
      await this.write(
        encoder.encode(`{"type":"hello","id":0,"v":1,"name":"${this.name}"}\n`),
      );
    } else if (protocol === "irc") {
      await this.write(
        encoder.encode(`NICK ${this.name}\r\nUSER ${this.name} 0 * :${this.name}\r\n`),
      );
    } else if (protocol === "text") {
      await this.write(encoder.encode(`${this.name}\n`));
    } else {
      this.#markReady();
    }
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (!this.open) throw new Error("closed");
    if (this.socket !== undefined) return this.socket.send(decoder.decode(bytes));
    await writeAll(this.conn!, bytes);
  }

  /** Opens a WebSocket to the web port (`--port` names it) and says hello. */
  async #connectWebSocket(timeoutMs: number): Promise<void> {
    const socket = new WebSocket(`ws://${HOST}:${this.shared.options.port}/ws`);
    this.socket = socket;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error("connect timed out")), timeoutMs);
      socket.onopen = () => resolve();
      socket.onerror = () => reject(new Error("connect failed"));
    }).finally(() => clearTimeout(timer));
    this.open = true;
    socket.onerror = () => {};
    socket.onclose = () => {
      this.open = false;
      this.#fail("connection closed during the handshake");
    };
    socket.onmessage = (event) => {
      const bytes = encoder.encode(event.data as string);
      this.bytesRead += bytes.length;
      const tally = this.shared.tally;
      // A message carries one frame or more, a line each.
      for (let start = 0; start < bytes.length;) {
        let end = bytes.indexOf(LF, start);
        if (end === -1) end = bytes.length;
        const caret = bytes.indexOf(CARET, start);
        if (
          caret !== -1 && caret + PAYLOAD_BYTES <= end && bytes[caret + 7] === DOT &&
          bytes[caret + 15] === DOT && bytes[caret + 32] === DOT
        ) {
          const sender = digits(bytes, caret + 1, 6);
          const seq = digits(bytes, caret + 8, 7);
          const micros = digits(bytes, caret + 16, 16);
          if (tally && sender >= 0 && seq >= 0 && micros >= 0) {
            tally.record(this.index, sender, seq, micros, clock() * 1000);
          } else if (tally) {
            tally.garbled++;
          }
        } else {
          this.#control(bytes, start, end, true);
        }
        start = end + 1;
      }
    };
    await this.write(encoder.encode(`{"type":"hello","id":0,"v":1,"name":"${this.name}"}`));
  }

  /**
   * A slow reader of `crowd` on the web port: the WebSocket handshake and a
   * `hello` written by hand over TCP (a `WebSocket` object reads all it is
   * sent at once), then reads as slowly as the other slow readers.
   */
  async #connectSlowWebSocket(timeoutMs: number): Promise<void> {
    const port = this.shared.options.port;
    const conn = await Deno.connect({ hostname: HOST, port });
    this.conn = conn;
    this.open = true;
    const timer = setTimeout(() => conn.close(), timeoutMs);
    try {
      const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
      await writeAll(
        conn,
        encoder.encode(
          `GET /ws HTTP/1.1\r\nHost: ${HOST}:${port}\r\nUpgrade: websocket\r\n` +
            `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        ),
      );
      const hello = encoder.encode(`{"type":"hello","id":0,"v":1,"name":"${this.name}"}`);
      const mask = crypto.getRandomValues(new Uint8Array(4));
      const frame = new Uint8Array(6 + hello.length);
      frame[0] = 0x81;
      frame[1] = 0x80 | hello.length;
      frame.set(mask, 2);
      for (let i = 0; i < hello.length; i++) frame[6 + i] = hello[i]! ^ mask[i % 4]!;
      await writeAll(conn, frame);
      // Read until the welcome: the 101 answer, then a frame starting with it.
      const seen = new Uint8Array(64 * 1024);
      let length = 0;
      while (length < seen.length) {
        const count = await conn.read(seen.subarray(length));
        if (count === null) throw new Error("connection closed during the handshake");
        length += count;
        this.bytesRead += count;
        const text = decoder.decode(seen.subarray(0, length));
        if (!text.startsWith("HTTP/1.1 101")) {
          if (text.includes("\r\n")) throw new Error(text.split("\r\n")[0]!);
          continue;
        }
        if (text.includes('"type":"welcome"')) break;
        if (text.includes('"type":"error"')) throw new Error(text.slice(text.indexOf("{"), 200));
      }
    } catch (error) {
      this.#fail(error instanceof Error ? error.message : String(error));
      throw error;
    } finally {
      clearTimeout(timer);
    }
    this.#markReady();
    this.#crowdLoop(conn);
  }

  frame(text: string): Uint8Array {
    switch (this.shared.options.protocol) {
      case "chat":
      case "ws":
        return encoder.encode(
          `{"type":"send","id":${this.#nextId++},"room":"#lobby","text":"${text}"}\n`,
        );
      case "irc":
        return encoder.encode(`PRIVMSG #bench :${text}\r\n`);
      case "lines":
      case "text":
        return encoder.encode(`${text}\n`);
    }
  }

  async sendFiller(): Promise<void> {
    await this.write(this.frame(FILLER));
    this.fillSent++;
  }

  async sendPayload(seq: number): Promise<void> {
    await this.write(this.frame(payload(this.index, seq, clock() * 1000)));
    this.sent++;
  }

  close(): void {
    this.socket?.close();
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

  /** Handles a line without a payload; `complete` is false for the head of a long line. */
  #control(bytes: Uint8Array, start: number, end: number, complete: boolean): void {
    const protocol = this.shared.options.protocol;
    if (protocol === "chat" || protocol === "ws") {
      if (!this.isReady) {
        if (startsWith(bytes, start, end, CHAT_WELCOME)) return this.#markReady();
        if (startsWith(bytes, start, end, CHAT_ERROR)) {
          return this.#fail(decoder.decode(bytes.subarray(start, Math.min(end, start + 200))));
        }
      } else if (startsWith(bytes, start, end, CHAT_BYE)) {
        this.gotBye = true;
      }
      if (startsWith(bytes, start, end, CHAT_PING)) {
        this.write(CHAT_PONG).catch(() => {});
        return;
      }
    } else if (protocol === "text") {
      if (!this.isReady) {
        if (startsWith(bytes, start, end, TEXT_WELCOME)) return this.#markReady();
        if (
          startsWith(bytes, start, end, TEXT_AGAIN) || startsWith(bytes, start, end, TEXT_REFUSAL)
        ) {
          return this.#fail(decoder.decode(bytes.subarray(start, Math.min(end, start + 200))));
        }
      } else if (startsWith(bytes, start, end, TEXT_NOTICE)) {
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
    if (complete && end - start >= FILLER_BYTES) {
      const mark = bytes.indexOf(PERCENT, start);
      if (mark !== -1 && mark < end && bytes[mark + 1] === LETTER_F) this.shared.fillReceived++;
    }
    const from = this.shared.syncFrom;
    if (from > this.synced && complete && end - start >= SYNC.length) {
      const line = decoder.decode(bytes.subarray(start, Math.min(end, start + 400)));
      const at = line.indexOf(SYNC);
      if (at !== -1) {
        const round = parseInt(line.slice(at + SYNC.length), 10);
        if (round >= from) this.synced = round;
      }
    }
  }

  /**
   * Reads into one reused buffer, finds line ends with `indexOf`, and parses
   * only the 64-byte payload of message lines; everything else is looked at
   * by {@linkcode Client.#control}.
   */
  async #readLoop(): Promise<void> {
    const conn = this.conn!;
    const buffer = new Uint8Array(this.bufferBytes);
    const half = buffer.length >> 1;
    let carry = 0;
    let skipping = false;
    try {
      while (true) {
        if (this.stopAfterReady && this.isReady) return;
        if (this.crowdReader && this.isReady) return await this.#crowdLoop(conn);
        const count = await conn.read(carry === 0 ? buffer : buffer.subarray(carry));
        if (count === null) break;
        this.bytesRead += count;
        const nowMicros = clock() * 1000;
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
            view[caret + 15] === DOT && view[caret + 32] === DOT
          ) {
            const sender = digits(view, caret + 1, 6);
            const seq = digits(view, caret + 8, 7);
            const micros = digits(view, caret + 16, 16);
            if (this.crowdReader) {
              // A slow reader's handshake may bring history: not counted.
            } else if (tally && sender >= 0 && seq >= 0 && micros >= 0) {
              tally.record(this.index, sender, seq, micros, nowMicros);
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
          // Too long to be a message (a member list): look at its head, skip the rest.
          this.#control(view, start, end, false);
          skipping = true;
          carry = 0;
        } else {
          if (start > 0) buffer.copyWithin(0, start, end);
          carry = rest;
        }
      }
    } catch {
      // A reset is a close.
    }
    this.open = false;
    this.#fail("connection closed during the handshake");
  }

  /**
   * A slow reader of `crowd`: one read of at most `crowdReadBytes` every
   * `crowdReadEveryMs`, from a random offset so that the readers do not all
   * read at once; a read that ends the connection while this side still
   * holds it is the server disconnecting it.
   */
  async #crowdLoop(conn: Deno.TcpConn): Promise<void> {
    const options = this.shared.options;
    const buffer = new Uint8Array(options.crowdReadBytes);
    const every = options.crowdReadEveryMs;
    let due = clock() + mulberry32(this.index + 17)() * every;
    try {
      while (this.conn === conn) {
        await sleepUntil(due);
        due += every;
        if (this.conn !== conn) return;
        const count = await conn.read(buffer);
        if (count === null) break;
        this.bytesRead += count;
      }
    } catch {
      // A reset is a close.
    }
    if (this.conn === conn) this.closedByServer = true;
    this.open = false;
  }
}

function countError(errors: Record<string, number>, error: unknown): void {
  const text = (error instanceof Error ? error.message : String(error))
    .replace(/\d+/g, "N").slice(0, 120);
  errors[text] = (errors[text] ?? 0) + 1;
}

/** One thread's clients and the answers to the commands of `load.ts`. */
class Shard {
  #shared: Shared | undefined;
  #clients = new Map<number, Client>();
  #connected: Client[] = [];
  #senders: Promise<void>[] = [];
  #sendersDone = 0;
  #slow: Client | undefined;

  get #options(): LoadOptions {
    return this.#shared!.options;
  }

  async handle(request: ShardRequest): Promise<Record<string, unknown>> {
    switch (request.op) {
      case "init":
        return this.#init(request);
      case "open":
        return await this.#open(request.indices, request.deadline, request.concurrency);
      case "syncFrom":
        this.#shared!.syncFrom = request.from;
        return {};
      case "syncSend":
        return await this.#syncSend(request.round);
      case "status":
        return { ...this.#status() };
      case "fillReset":
        this.#shared!.fillReceived = 0;
        return {};
      case "fill":
        return await this.#fill(request.perClient, request.spreadMs, request.deadline);
      case "start":
        this.#start(request.t0, request.sendDeadline);
        return {};
      case "finish":
        return { ...this.#finish() };
      case "drainSlow":
        return await this.#drainSlow(request.ms);
      case "crowdPorts":
        return this.#crowdPorts();
      case "close":
        for (const client of this.#clients.values()) client.close();
        return {};
    }
  }

  #init(request: Extract<ShardRequest, { op: "init" }>): Record<string, unknown> {
    const { options, indices, total, slowIndex, perClient, crowdFrom } = request;
    const idle = options.workload === "idle";
    this.#shared = {
      options,
      tally: idle ? undefined : new Tally(
        total,
        perClient,
        Math.min(4_000_000, Math.ceil(indices.length * perClient * total)),
      ),
      syncFrom: 0,
      fillReceived: 0,
    };
    const bufferBytes = idle ? (options.protocol === "chat" ? 16 * 1024 : 4 * 1024) : 64 * 1024;
    for (const index of indices) {
      const client = new Client(index, this.#shared, bufferBytes);
      if (idle) client.joinChannel = false;
      if (index >= crowdFrom) client.crowdReader = true;
      // A WebSocket is always read: no slow consumer among WebSocket clients.
      if (index === slowIndex && options.protocol !== "ws") {
        client.stopAfterReady = true;
        this.#slow = client;
      }
      this.#clients.set(index, client);
    }
    return {};
  }

  async #open(
    indices: number[],
    deadline: number,
    concurrency: number,
  ): Promise<Record<string, unknown>> {
    const errors: Record<string, number> = {};
    const clients = indices.map((index) => this.#clients.get(index)!);
    let joined = 0;
    let failed = 0;
    let next = 0;
    const worker = async () => {
      while (next < clients.length) {
        const client = clients[next++]!;
        const left = deadline - clock();
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
                Math.max(1, deadline - clock()),
              );
            }),
          ]).finally(() => clearTimeout(timer));
          this.#connected.push(client);
          joined++;
        } catch (error) {
          failed++;
          countError(errors, error);
          client.close();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, clients.length) }, worker));
    return { joined, failed, errors };
  }

  async #syncSend(round: number): Promise<Record<string, unknown>> {
    const sender = this.#connected
      .filter((client) => client.open && !client.stopAfterReady && !client.crowdReader)
      .sort((a, b) => a.index - b.index)[0];
    if (!sender) return { sent: false };
    try {
      await sender.write(sender.frame(`${SYNC}${round}.`));
      return { sent: true, sender: sender.index };
    } catch {
      return { sent: false };
    }
  }

  #readers(): Client[] {
    return this.#connected.filter((client) =>
      client.open && !client.stopAfterReady && !client.crowdReader
    );
  }

  #status(): ShardStatus {
    const from = this.#shared!.syncFrom;
    const readers = this.#readers();
    const tally = this.#shared!.tally;
    let sent = 0;
    let byes = 0;
    let bytesRead = 0;
    let fillSent = 0;
    let crowdJoined = 0;
    let crowdClosed = 0;
    let crowdBytes = 0;
    for (const client of this.#connected) {
      if (client.crowdReader) {
        crowdJoined++;
        if (client.closedByServer) crowdClosed++;
        crowdBytes += client.bytesRead;
        continue;
      }
      sent += client.sent;
      fillSent += client.fillSent;
      if (client.gotBye) byes++;
      bytesRead += client.bytesRead;
    }
    return {
      connected: this.#connected.length,
      open: this.#connected.filter((client) => client.open).length,
      readers: readers.length,
      synced: from > 0 ? readers.filter((client) => client.synced >= from).length : 0,
      sent,
      sendersDone: this.#sendersDone,
      senders: this.#senders.length,
      received: tally?.received ?? 0,
      unique: tally?.unique ?? 0,
      lastAt: tally?.lastAt ?? 0,
      byes,
      bytesRead,
      fillSent,
      fillReceived: this.#shared!.fillReceived,
      crowdJoined,
      crowdClosed,
      crowdBytes,
    };
  }

  /**
   * Every reading client sends `perClient` warm-up lines spread evenly over
   * `spreadMs`; answers when all are written or at `deadline` (a server that
   * stopped reading blocks the writes).
   */
  async #fill(
    perClient: number,
    spreadMs: number,
    deadline: number,
  ): Promise<Record<string, unknown>> {
    const senders = this.#readers();
    const began = clock();
    const interval = spreadMs / perClient;
    const all = Promise.all(senders.map(async (client) => {
      const offset = mulberry32(client.index + 1)() * interval;
      try {
        for (let i = 0; i < perClient && client.open && clock() < deadline; i++) {
          await sleepUntil(began + offset + i * interval);
          await client.sendFiller();
        }
      } catch {
        // The connection broke.
      }
    }));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const complete = await Promise.race([
      all.then(() => true),
      new Promise<boolean>((resolve) =>
        timer = setTimeout(() => resolve(false), deadline - clock())
      ),
    ]);
    clearTimeout(timer);
    return { complete };
  }

  #start(t0: number, sendDeadline: number): void {
    const options = this.#options;
    this.#shared!.tally!.since = (t0 - 1) * 1000;
    const burst = options.workload === "burst";
    const interval = 1000 / options.rate;
    const senders = this.#readers();
    for (const client of senders) {
      const random = mulberry32(options.seed * 7919 + client.index);
      const offset = random() * interval;
      const perClient = this.#shared!.tally!.maxSeq;
      const run = async () => {
        await sleepUntil(t0);
        try {
          if (burst) {
            for (let seq = 0; seq < options.messages; seq++) {
              if (!client.open || clock() > sendDeadline) break;
              await client.sendPayload(seq);
            }
          } else {
            for (let seq = 0; seq < perClient; seq++) {
              const due = t0 + offset + seq * interval;
              if (due >= sendDeadline) break;
              if (due > clock()) await sleepUntil(due);
              if (!client.open) break;
              await client.sendPayload(seq);
            }
          }
        } catch {
          // The connection broke; what was sent is counted.
        } finally {
          this.#sendersDone++;
        }
      };
      this.#senders.push(run());
    }
  }

  #finish(): ShardTally {
    const status = this.#status();
    const tally = this.#shared!.tally!;
    return {
      ...status,
      duplicates: tally.duplicates,
      reordered: tally.reordered,
      garbled: tally.garbled,
      stale: tally.stale,
      latencies: tally.latencies.slice(0, tally.unique),
    };
  }

  /**
   * The local ports of the slow readers of `crowd` still open on this side,
   * and how many saw the connection end. A slow reader sees the end only
   * after taking everything before it, which at its pace can take minutes, so
   * `load.ts` also looks at the server's side of each connection.
   */
  #crowdPorts(): Record<string, unknown> {
    const ports: number[] = [];
    let ended = 0;
    for (const client of this.#connected) {
      if (!client.crowdReader) continue;
      if (client.closedByServer) ended++;
      else if (client.conn) ports.push((client.conn.localAddr as Deno.NetAddr).port);
    }
    return { ports, ended };
  }

  async #drainSlow(ms: number): Promise<Record<string, unknown>> {
    const client = this.#slow;
    if (!client || !this.#connected.includes(client)) return { joined: false };
    if (!client.conn || !client.open) return { joined: true, closed: true, bytes: 0 };
    const conn = client.conn;
    const buffer = new Uint8Array(256 * 1024);
    let bytes = 0;
    const deadline = clock() + ms;
    while (clock() < deadline) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const result = await Promise.race([
        conn.read(buffer).catch(() => null),
        new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), Math.max(1, deadline - clock()));
        }),
      ]).finally(() => clearTimeout(timer));
      if (result === "timeout") break;
      if (result === null) return { joined: true, closed: true, bytes };
      bytes += result;
    }
    return { joined: true, closed: false, bytes };
  }
}

/** Reply of a thread to one command. */
export interface ShardReply {
  id: number;
  ok: boolean;
  error?: string;
  value?: Record<string, unknown>;
}

// Runs as a worker: answer each command in order of arrival.
if ("WorkerGlobalScope" in globalThis) {
  const shard = new Shard();
  const scope = self as unknown as {
    onmessage: ((event: MessageEvent<{ id: number; request: ShardRequest }>) => void) | null;
    postMessage(message: unknown, transfer?: Transferable[]): void;
  };
  scope.onmessage = async (event) => {
    const { id, request } = event.data;
    try {
      const value = await shard.handle(request);
      const transfer = value.latencies instanceof Float64Array
        ? [value.latencies.buffer as ArrayBuffer]
        : [];
      scope.postMessage({ id, ok: true, value } satisfies ShardReply, transfer);
    } catch (error) {
      scope.postMessage(
        {
          id,
          ok: false,
          error: error instanceof Error ? error.message : String(error),
        } satisfies ShardReply,
      );
    }
  };
}
