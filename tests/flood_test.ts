import { deepEqual, equal, match, ok } from "node:assert/strict";
import { type ChatClient, connect, serve } from "../mod.ts";
import { LineBudget } from "../_server/line_budget.ts";
import { withTimeout } from "./_cli.ts";
import { local } from "./_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Others' messages must cross this fast while someone floods, in ms. */
const CROSSING_BAR = 250;

/**
 * A connection that writes the same line as fast as the socket takes it and
 * reads everything that comes back, until the server closes it.
 */
class Flooder {
  readonly #conn: Deno.Conn;
  /** Bytes received after the handshake. */
  received = 0;
  /** The last bytes received, as text. */
  tail = "";
  /** Lines written. */
  sent = 0;
  readonly #reading: Promise<void>;
  #closed = false;
  #wake: (() => void) | undefined;

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.#reading = this.#read();
  }

  static async open(port: number, hello: string): Promise<Flooder> {
    const flooder = new Flooder(await Deno.connect({ hostname: "127.0.0.1", port }));
    await flooder.#write(encoder.encode(hello));
    return flooder;
  }

  async #read(): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      while (true) {
        const read = await this.#conn.read(buffer);
        if (read === null) break;
        this.received += read;
        this.tail = (this.tail + decoder.decode(buffer.subarray(0, read))).slice(-2000);
        this.#wake?.();
      }
    } catch {
      // Reset by the server: the end, like EOF.
    }
    this.#closed = true;
    this.#wake?.();
  }

  async #write(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.length) offset += await this.#conn.write(bytes.subarray(offset));
  }

  /** Waits until `text` has been received. */
  async heard(text: string): Promise<void> {
    while (!this.tail.includes(text)) {
      if (this.#closed) throw new Error(`Closed before "${text}" was received: ${this.tail}`);
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  /** Writes `line` in chunks of 500 until the server closes the connection. */
  async flood(line: string): Promise<void> {
    const chunk = encoder.encode(line.repeat(500));
    try {
      while (!this.#closed) {
        await this.#write(chunk);
        this.sent += 500;
      }
    } catch {
      // Closed by the server.
    }
    await this.#reading;
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** Sends messages from alice to bob until `until` settles; returns how long each took, in ms. */
async function crossings(
  alice: ChatClient,
  bob: ChatClient,
  until: Promise<void>,
): Promise<number[]> {
  let done = false;
  until.then(() => done = true, () => done = true);
  const times: number[] = [];
  for (let n = 0; !done || times.length < 5; n++) {
    const text = `crossing ${n}`;
    const start = performance.now();
    const arrived = (async () => {
      while (true) {
        const message = await bob.next("message", { timeout: 10_000 });
        if (message.from === "alice" && message.text === text) return;
      }
    })();
    await alice.send(text);
    await arrived;
    times.push(performance.now() - start);
    // A person types a few messages a second, not a flood.
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return times;
}

const floods = [
  { kind: "plain-text lines", hello: "flooder\n", line: "spam spam\n" },
  {
    kind: "invalid JSON lines",
    hello: '{"type":"hello","id":0,"v":1,"name":"flooder"}\n',
    line: "{not json\n",
  },
  {
    kind: "send frames that get rate_limited",
    hello: '{"type":"hello","id":0,"v":1,"name":"flooder"}\n',
    line: '{"type":"send","id":1,"room":"#lobby","text":"spam"}\n',
  },
];

Deno.test("a connection flooding any kind of line does not slow the others down and is disconnected", async (t) => {
  for (const { kind, hello, line } of floods) {
    await t.step(kind, async () => {
      const floodTimeout = 2500;
      await using server = await serve({ ...local, floodTimeout });
      const { port } = server.addr;
      await using alice = await connect({ port, name: "alice", history: 0 });
      await using bob = await connect({ port, name: "bob", history: 0 });
      // Carol only watches: bob's waits for messages pass over other events.
      await using carol = await connect({ port, name: "carol", history: 0 });
      const flooder = await Flooder.open(port, hello);
      try {
        while ((await bob.next("join", { timeout: 10_000 })).name !== "flooder") {
          // Carol's join comes first.
        }
        await flooder.heard(kind === "plain-text lines" ? "flooder" : '"welcome"');
        const start = performance.now();
        const flood = withTimeout(flooder.flood(line), 20_000, "the flooder to be disconnected");
        const times = await crossings(alice, bob, flood);
        await flood;
        const lasted = performance.now() - start;
        const sorted = times.toSorted((a, b) => a - b);
        const median = sorted[Math.floor(sorted.length / 2)]!;
        const max = sorted.at(-1)!;
        const figures = `${times.length} crossings, median ${median.toFixed(1)} ms, max ${
          max.toFixed(1)
        } ms; flood of ${flooder.sent} lines for ${
          lasted.toFixed(0)
        } ms, ${flooder.received} bytes back`;
        ok(max < CROSSING_BAR, figures);
        // The refusals are coalesced: a few kilobytes, not one line per line.
        ok(flooder.received < 32 * 1024, figures);
        ok(flooder.sent > 10_000, figures);
        // Disconnected for the flood, with a reason, at the flood timeout.
        match(flooder.tail, /"reason":"flood"|\*\*\* Disconnected: you kept sending lines/);
        ok(lasted >= floodTimeout, figures);
        const leave = await carol.next("leave", { timeout: 10_000 });
        deepEqual([leave.name, leave.reason], ["flooder", "flood"]);
        deepEqual(await alice.who(), ["alice", "bob", "carol"]);
      } finally {
        flooder.close();
      }
    });
  }
});

Deno.test("refusals to a connection over its line budget come as one notice a second", async () => {
  await using server = await serve({ ...local, rateLimit: 40, rateBurst: 10 });
  const { port } = server.addr;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    // Ten lines fit in the line budget; the others wait for it, 40 a second.
    const lines = Array.from({ length: 100 }, (_, i) => `nonsense ${i}\n`);
    const hello = '{"type":"hello","id":"h","v":1,"name":"eager"}\n';
    const quit = '{"type":"quit","id":"q"}\n';
    const bytes = encoder.encode(hello + lines.join("") + quit);
    for (let offset = 0; offset < bytes.length;) {
      offset += await conn.write(bytes.subarray(offset));
    }
    let text = "";
    const buffer = new Uint8Array(64 * 1024);
    while (true) {
      const read = await conn.read(buffer);
      if (read === null) break;
      text += decoder.decode(buffer.subarray(0, read));
    }
    const frames = text.trim().split("\n").map((frame) => JSON.parse(frame));
    const oneByOne = frames.filter((frame) => frame.type === "error" && frame.code === "bad_json");
    const notices = frames.filter((frame) =>
      frame.type === "error" && frame.code === "rate_limited"
    );
    ok(notices.length >= 1 && notices.length <= 12, JSON.stringify(notices));
    let held = 0;
    for (const notice of notices) {
      equal(notice.id, undefined);
      const [, count] = notice.message.match(/^Slow down: (\d+) more lines? (?:was|were) refused/);
      held += Number(count);
    }
    // Every line is accounted for: answered on its own, or counted in a notice.
    equal(oneByOne.length + held, 100);
    ok(frames.some((frame) => frame.id === "h" && frame.type === "welcome"));
    ok(frames.some((frame) => frame.id === "q" && frame.type === "ack"));
    ok(oneByOne.length < 20, `${oneByOne.length} answered one by one`);
  } finally {
    conn.close();
  }
});

Deno.test("the line budget lets a burst through, then paces, and notices a flood", async (t) => {
  await t.step("a burst, then one line per token", () => {
    const budget = new LineBudget({ rate: 10, burst: 5, floodTimeout: 1000, floodBacklog: 100 }, 0);
    equal(budget.allowance(0, false), 5);
    budget.take(5);
    equal(budget.allowance(0, false), 0);
    equal(budget.wait(0, 0), 100);
    equal(budget.over, true);
    equal(budget.allowance(100, true), 1);
    budget.take(1);
    // Room found after waiting: still over budget.
    equal(budget.over, true);
    equal(budget.allowance(1000, false), 5);
    equal(budget.over, false);
  });
  await t.step("a backlog kept over the flood timeout without a break", () => {
    const budget = new LineBudget({ rate: 10, burst: 5, floodTimeout: 1000, floodBacklog: 100 }, 0);
    budget.take(5);
    let now = 0;
    while (true) {
      const wait = budget.wait(now, 500);
      if (wait === undefined) break;
      now += wait;
      budget.take(budget.allowance(now, true));
    }
    equal(now, 1000);
  });
  await t.step("a client that keeps a small backlog is paced for ever, never cut off", () => {
    const budget = new LineBudget({ rate: 10, burst: 5, floodTimeout: 1000, floodBacklog: 100 }, 0);
    budget.take(5);
    let now = 0;
    while (now < 60_000) {
      const wait = budget.wait(now, 99);
      ok(wait !== undefined, `cut off at ${now} ms`);
      now += wait;
      budget.take(budget.allowance(now, true));
    }
    equal(budget.over, true);
  });
  await t.step("a line that takes more than the allowance is paid back later", () => {
    const budget = new LineBudget({ rate: 10, burst: 5, floodTimeout: 1000, floodBacklog: 100 }, 0);
    budget.take(7);
    equal(budget.allowance(0, false), 0);
    equal(budget.wait(0, 0), 300);
  });
});
