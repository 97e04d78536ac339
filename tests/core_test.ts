import { setImmediate } from "node:timers";
import { deepEqual, equal, match, ok } from "node:assert/strict";
import type { ClientFrame, ServerFrame } from "../protocol/frames.ts";
import { DEFAULT_LIMITS, type Limits, LOBBY, PROTOCOL_VERSION } from "../protocol/limits.ts";
import {
  ChatCore,
  type CoreOptions,
  type Origin,
  type Outbound,
  type Peer,
  type Session,
  SqliteStorage,
} from "../_server/core.ts";
import { Store, type StoredMessage } from "../_server/store.ts";
import { TokenBucket } from "../_server/token_bucket.ts";
import { LineBudget } from "../_server/line_budget.ts";

const ORIGIN: Origin = { remote: "203.0.113.7:40000", ip: "203.0.113.7", ports: [7777] };
const OPERATOR = "SHA256:operator";

/** A peer without a socket: it records what the core hands it. */
class FakePeer implements Peer {
  readonly frames: ServerFrame[] = [];
  closed = false;
  files = true;
  session!: Session;

  deliver(out: Outbound): void {
    this.frames.push(out.frame);
  }

  close(): void {
    this.closed = true;
  }

  adopt(session: Session): void {
    this.session = session;
  }

  /** Hands a request to the core as this peer's session. */
  send(core: ChatCore, frame: ClientFrame): Promise<void> | undefined {
    return core.receive(this.session, frame);
  }

  /** The frames of one type received so far, and forgets every frame. */
  take<T extends ServerFrame["type"]>(type: T): Extract<ServerFrame, { type: T }>[] {
    const found = this.frames.filter((frame) => frame.type === type) as Extract<
      ServerFrame,
      { type: T }
    >[];
    this.frames.length = 0;
    return found;
  }

  /** The last frame received. */
  get last(): ServerFrame | undefined {
    return this.frames.at(-1);
  }
}

/** A core over an in-memory store, shut down at the end of the test. */
async function makeCore(
  limits: Partial<Limits> = {},
  options: Partial<CoreOptions> = {},
): Promise<{ core: ChatCore; log: string[] } & AsyncDisposable> {
  const store = new Store(":memory:");
  const log: string[] = [];
  const core = await ChatCore.open({
    limits: { ...DEFAULT_LIMITS, ...limits },
    software: "chat/test",
    store: new SqliteStorage(store),
    historyOnJoin: 50,
    maxHistoryPage: 200,
    resumeGrace: 30_000,
    retention: { maxMessages: 0, maxAgeDays: 0 },
    operators: new Set([OPERATOR]),
    log: (line) => log.push(line),
    ...options,
  });
  return {
    core,
    log,
    async [Symbol.asyncDispose]() {
      await core.shutdown();
      store.close();
    },
  };
}

/** Opens a session and says hello. */
async function arrive(
  core: ChatCore,
  name: string,
  options: { reconnect?: boolean; key?: string; resume?: string } = {},
): Promise<FakePeer> {
  const peer = new FakePeer();
  peer.session = core.open(peer, ORIGIN);
  if (options.key !== undefined) peer.session.proved(options.key);
  const hello: ClientFrame = { type: "hello", id: 1, v: PROTOCOL_VERSION, name };
  if (options.reconnect) hello.reconnect = true;
  if (options.resume !== undefined) hello.resume = options.resume;
  await peer.send(core, hello);
  return peer;
}

/** Waits until the sends before are committed and delivered: a ping sees the world after them. */
async function committed(core: ChatCore, peer: FakePeer): Promise<void> {
  await peer.send(core, { type: "ping", id: "settled" });
  const index = peer.frames.findIndex((frame) => frame.type === "ack" && frame.id === "settled");
  peer.frames.splice(index, 1);
}

/**
 * Lets the sends of this turn go to storage: their commit is scheduled with
 * `setImmediate` before this one, so it has started when this resolves.
 */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

Deno.test("core relays a room message to the others only once it is stored, then acks", async () => {
  await using fixture = await makeCore();
  const { core } = fixture;
  const alice = await arrive(core, "alice");
  const bob = await arrive(core, "bob");
  equal(alice.take("join")[0]?.name, "bob");
  bob.take("welcome");
  await alice.send(core, { type: "send", id: 2, room: LOBBY, text: "hi" });
  // Nothing is heard of a message before it is committed.
  deepEqual(bob.frames, []);
  deepEqual(alice.frames, []);
  await committed(core, alice);
  const [message] = bob.take("message");
  equal(message?.text, "hi");
  equal(message?.from, "alice");
  const [ack] = alice.take("ack");
  equal(ack?.id, 2);
  equal(ack?.seq, message?.seq);
  // A newcomer hears the message in the replay.
  const carol = await arrive(core, "carol");
  equal(carol.take("message")[0]?.text, "hi");
});

Deno.test("core keeps rooms apart and announces joins, parts and leaves", async () => {
  await using fixture = await makeCore();
  const { core } = fixture;
  const alice = await arrive(core, "alice");
  const bob = await arrive(core, "bob");
  await alice.send(core, { type: "join", id: 2, room: "#dev" });
  const [joined] = alice.take("ack");
  deepEqual(joined?.names, ["alice"]);
  bob.take("join");
  await bob.send(core, { type: "send", id: 2, room: "#dev", text: "in?" });
  equal(bob.take("error")[0]?.code, "not_in_room");
  await bob.send(core, { type: "join", id: 3, room: "#dev" });
  equal(alice.take("join")[0]?.room, "#dev");
  await alice.send(core, { type: "send", id: 3, room: "#dev", text: "dev only" });
  await committed(core, alice);
  equal(bob.take("message")[0]?.room, "#dev");
  await bob.send(core, { type: "part", id: 4, room: "#dev" });
  equal(alice.take("leave")[0]?.reason, "part");
  await bob.send(core, { type: "quit", id: 5 });
  ok(bob.closed);
  const left = alice.take("leave");
  deepEqual(left.map((event) => [event.room, event.reason]), [[LOBBY, "quit"]]);
  await alice.send(core, { type: "rooms", id: 6 });
  deepEqual(alice.take("ack")[0]?.rooms?.map((room) => [room.name, room.members]), [
    ["#dev", 1],
    [LOBBY, 1],
  ]);
});

Deno.test("core holds a lost session for its client, and its token resumes it once", async () => {
  await using fixture = await makeCore();
  const { core } = fixture;
  const alice = await arrive(core, "alice", { reconnect: true });
  const token = alice.take("welcome")[0]?.session ?? "";
  const bob = await arrive(core, "bob");
  core.disconnect(alice.session, alice, "lost");
  // Nobody sees alice leave while her name is held.
  deepEqual(bob.take("leave"), []);
  equal(core.size, 2);
  const back = await arrive(core, "alice", { reconnect: true, resume: token });
  const [welcome] = back.take("welcome");
  equal(welcome?.resumed, true);
  ok(welcome?.session !== token);
  deepEqual(welcome?.rooms.map((room) => room.name), [LOBBY]);
  // A token works once.
  const again = await arrive(core, "alice", { resume: token });
  equal(again.take("error")[0]?.code, "name_taken");
});

Deno.test("core delivers a private message held for a reconnect after the welcome", async () => {
  await using fixture = await makeCore();
  const { core } = fixture;
  const alice = await arrive(core, "alice", { reconnect: true });
  const token = alice.take("welcome")[0]?.session ?? "";
  const bob = await arrive(core, "bob");
  core.disconnect(alice.session, alice, "lost");
  await bob.send(core, { type: "dm", id: 2, to: "alice", text: "one" });
  await bob.send(core, { type: "dm", id: 3, to: "alice", text: "two" });
  const back = await arrive(core, "alice", { reconnect: true, resume: token });
  deepEqual(back.frames.map((frame) => frame.type), ["welcome", "dm", "dm"]);
  deepEqual(back.take("dm").map((dm) => dm.text), ["one", "two"]);
});

Deno.test("core answers a repeated private-message key once, delivering once", async () => {
  await using fixture = await makeCore();
  const { core } = fixture;
  const alice = await arrive(core, "alice");
  const bob = await arrive(core, "bob");
  bob.take("welcome");
  alice.take("join");
  await alice.send(core, { type: "dm", id: 2, to: "bob", text: "once", key: "k1" });
  await alice.send(core, { type: "dm", id: 3, to: "bob", text: "once", key: "k1" });
  const acks = alice.take("ack");
  deepEqual(acks.map((ack) => [ack.id, ack.duplicate]), [[2, undefined], [3, true]]);
  equal(bob.take("dm").length, 1);
});

Deno.test("core applies the table's rules: a name first, operators only, muted users", async () => {
  await using fixture = await makeCore();
  const { core } = fixture;
  const stranger = new FakePeer();
  stranger.session = core.open(stranger, ORIGIN);
  await stranger.send(core, { type: "who", id: 1 });
  equal(stranger.take("error")[0]?.code, "not_registered");
  const op = await arrive(core, "op", { key: OPERATOR });
  const bob = await arrive(core, "bob");
  await bob.send(core, { type: "kick", id: 2, name: "op" });
  equal(bob.take("error")[0]?.code, "not_operator");
  await op.send(core, { type: "mute", id: 2, name: "bob", duration: 60, reason: "calm down" });
  equal(op.take("ack")[0]?.id, 2);
  for (
    const frame of [
      { type: "send", id: 3, room: LOBBY, text: "let me speak" },
      { type: "dm", id: 4, to: "op", text: "please" },
      { type: "topic", id: 5, room: LOBBY, topic: "mine" },
    ] as const
  ) {
    await bob.send(core, frame);
    const [error] = bob.take("error");
    equal(error?.code, "muted");
    match(error?.message ?? "", /^You are muted until .* UTC: calm down$/);
  }
  // Reading the topic is not speaking.
  await bob.send(core, { type: "topic", id: 6, room: LOBBY });
  equal(bob.take("ack")[0]?.topic, "");
  await committed(core, bob);
  deepEqual(op.take("message"), []);
});

Deno.test("core ends a kicked or banned session and tells it why", async () => {
  await using fixture = await makeCore();
  const { core } = fixture;
  const op = await arrive(core, "op", { key: OPERATOR });
  const bob = await arrive(core, "bob");
  const carol = await arrive(core, "carol");
  op.take("join");
  await op.send(core, { type: "kick", id: 2, name: "bob", reason: "spam" });
  ok(bob.closed);
  const bye = bob.take("bye")[0];
  deepEqual([bye?.reason, bye?.message], ["kicked", "Kicked by op: spam"]);
  equal(carol.take("leave").find((event) => event.name === "bob")?.reason, "kicked");
  await op.send(core, { type: "ban", id: 3, target: "carol" });
  ok(carol.closed);
  equal(carol.take("bye")[0]?.message, "Banned by op for ever");
  const again = await arrive(core, "carol");
  const [refused] = again.take("error");
  deepEqual([refused?.code, refused?.message], ["banned", "You are banned for ever"]);
  ok(again.closed);
  equal(core.banned("name", "carol")?.by, "op");
});

Deno.test("core rate-limits each session on its own; joining costs more", async () => {
  await using fixture = await makeCore({ rateLimit: 1, rateBurst: 3 });
  const { core } = fixture;
  const alice = await arrive(core, "alice");
  const bob = await arrive(core, "bob");
  alice.take("welcome");
  bob.take("welcome");
  for (let id = 2; id <= 4; id++) await alice.send(core, { type: "who", id });
  await alice.send(core, { type: "who", id: 5 });
  const [limited] = alice.take("error");
  equal(limited?.code, "rate_limited");
  equal(limited?.id, 5);
  match(limited?.message ?? "", /^Slow down: too many requests; try again in \d+\.\d s$/);
  // Free requests still pass; the others' requests are not slowed.
  await alice.send(core, { type: "ping", id: 6 });
  equal(alice.take("ack")[0]?.id, 6);
  await bob.send(core, { type: "send", id: 2, room: LOBBY, text: "unhindered" });
  await committed(core, bob);
  equal(bob.take("ack")[0]?.id, 2);
  equal(alice.take("message")[0]?.text, "unhindered");
  // A join takes the whole burst (5, capped at 3).
  const carol = await arrive(core, "carol");
  carol.take("welcome");
  await carol.send(core, { type: "join", id: 2, room: "#x" });
  equal(carol.take("ack")[0]?.room, "#x");
  await carol.send(core, { type: "who", id: 3 });
  equal(carol.take("error")[0]?.code, "rate_limited");
});

Deno.test("core answers requests in order around a batch of sends", async () => {
  await using fixture = await makeCore();
  const { core } = fixture;
  const alice = await arrive(core, "alice");
  alice.take("welcome");
  await alice.send(core, { type: "send", id: 2, room: LOBBY, text: "first" });
  await alice.send(core, { type: "send", id: 3, room: "#nowhere", text: "second" });
  await alice.send(core, { type: "send", id: 4, room: LOBBY, text: "third" });
  await committed(core, alice);
  deepEqual(alice.frames.map((frame) => "id" in frame ? frame.id : undefined), [2, 3, 4]);
});

Deno.test("core says goodbye to everyone at shutdown and refuses what comes after", async () => {
  await using fixture = await makeCore();
  const { core } = fixture;
  const alice = await arrive(core, "alice");
  const waiting = new FakePeer();
  waiting.session = core.open(waiting, ORIGIN);
  await core.shutdown();
  for (const peer of [alice, waiting]) {
    equal(peer.take("bye")[0]?.reason, "shutdown");
    ok(peer.closed);
  }
  const late = new FakePeer();
  late.session = core.open(late, ORIGIN);
  await late.send(core, { type: "hello", id: 1, v: PROTOCOL_VERSION, name: "late" });
  equal(late.take("error")[0]?.code, "shutting_down");
  equal(core.size, 0);
});

Deno.test("a token bucket refills at its rate up to its burst, and pays off a debt", () => {
  const bucket = new TokenBucket(2, 4, 0);
  ok(bucket.tryTake(4, 0));
  ok(!bucket.tryTake(1, 0));
  equal(bucket.wait(1), 500);
  ok(bucket.tryTake(1, 500));
  equal(bucket.refill(10_000), 4);
  bucket.take(10, -3);
  equal(bucket.refill(10_000), -3);
  equal(bucket.refill(11_000), -1);
});

Deno.test("a line budget lets a burst through, then makes lines wait, then calls a flood", () => {
  const budget = new LineBudget({ rate: 10, burst: 5, floodTimeout: 1000, floodBacklog: 100 }, 0);
  equal(budget.allowance(0, false), 5);
  budget.take(5);
  equal(budget.allowance(0, false), 0);
  equal(budget.wait(0, 500), 100);
  ok(budget.over);
  equal(budget.allowance(100, true), 1);
  budget.take(1);
  ok(budget.over);
  equal(budget.wait(999, 500), 100);
  equal(budget.wait(1000, 500), undefined);
});

/** Storage whose commits wait until the test lets them through, as a distant database's would. */
class SlowStorage extends SqliteStorage {
  readonly appends: number[] = [];
  #gate = Promise.withResolvers<void>();

  /** Lets the commits waiting now (and the next ones) through. */
  release(): void {
    this.#gate.resolve();
  }

  /** Makes the next commits wait again. */
  hold(): void {
    this.#gate = Promise.withResolvers();
  }

  override async append(messages: readonly StoredMessage[]): Promise<void> {
    this.appends.push(messages.length);
    await this.#gate.promise;
    return super.append(messages);
  }
}

Deno.test("core with slow storage acks only once committed, batches a turn, keeps room order", async () => {
  const store = new Store(":memory:");
  const storage = new SlowStorage(store);
  const core = await ChatCore.open({
    limits: DEFAULT_LIMITS,
    software: "chat/test",
    store: storage,
    historyOnJoin: 50,
    maxHistoryPage: 200,
    resumeGrace: 0,
    retention: { maxMessages: 0, maxAgeDays: 0 },
  });
  try {
    const alice = await arrive(core, "alice");
    const bob = await arrive(core, "bob");
    alice.frames.length = 0;
    bob.frames.length = 0;
    // One turn: three sends, one commit.
    for (const id of [1, 2, 3]) {
      equal(alice.send(core, { type: "send", id, room: LOBBY, text: `m${id}` }), undefined);
    }
    await nextTurn();
    deepEqual(storage.appends, [3]);
    // While that commit is in flight, later sends and requests wait their turn.
    const later = bob.send(core, { type: "send", id: 1, room: LOBBY, text: "later" });
    const who = alice.send(core, { type: "who", id: 4 });
    deepEqual(alice.frames, []);
    deepEqual(bob.frames, []);
    storage.release();
    await later;
    await who;
    await committed(core, bob);
    deepEqual(bob.take("message").map((message) => [message.text, message.seq]), [
      ["m1", 1],
      ["m2", 2],
      ["m3", 3],
    ]);
    const answered = alice.frames as ServerFrame[];
    deepEqual(answered.map((frame) => [frame.type, "id" in frame ? frame.id : undefined]), [
      ["ack", 1],
      ["ack", 2],
      ["ack", 3],
      // Bob's send came first: "who" is answered after it.
      ["message", undefined],
      ["ack", 4],
    ]);
    equal(alice.take("message")[0]?.seq, 4);
    deepEqual(storage.appends, [3, 1]);
  } finally {
    storage.release();
    await core.shutdown();
    store.close();
  }
});

Deno.test("sends from several people while a commit is in flight go into one next batch", async () => {
  const store = new Store(":memory:");
  const storage = new SlowStorage(store);
  const core = await ChatCore.open({
    limits: DEFAULT_LIMITS,
    software: "chat/test",
    store: storage,
    historyOnJoin: 50,
    maxHistoryPage: 200,
    resumeGrace: 0,
    retention: { maxMessages: 0, maxAgeDays: 0 },
  });
  try {
    const people = [];
    for (const name of ["alice", "bob", "carol", "dave"]) people.push(await arrive(core, name));
    storage.hold();
    const [alice, ...others] = people;
    alice!.send(core, { type: "send", id: 10, room: LOBBY, text: "first" });
    await nextTurn();
    deepEqual(storage.appends.slice(-1), [1]);
    // A database across the network answers later: the sends meanwhile do not wait for it one
    // by one (a commit each), they make the next batch together.
    for (const [i, peer] of others.entries()) {
      equal(peer.send(core, { type: "send", id: 10, room: LOBBY, text: `then ${i}` }), undefined);
    }
    storage.release();
    await committed(core, alice!);
    await committed(core, others[2]!);
    deepEqual(storage.appends.slice(-2), [1, 3]);
    deepEqual(alice!.take("message").map((m) => m.seq), [2, 3, 4]);
  } finally {
    storage.release();
    await core.shutdown();
    store.close();
  }
});

/** Storage whose next commit fails. */
class FailingStorage extends SqliteStorage {
  failNext = false;

  override append(messages: readonly StoredMessage[]): Promise<void> {
    if (!this.failNext) return super.append(messages);
    this.failNext = false;
    return Promise.reject(new Error("disk full"));
  }
}

Deno.test("core refuses the sends of a commit that fails, and tells nobody else", async () => {
  const store = new Store(":memory:");
  const storage = new FailingStorage(store);
  const log: string[] = [];
  const core = await ChatCore.open({
    limits: DEFAULT_LIMITS,
    software: "chat/test",
    store: storage,
    historyOnJoin: 50,
    maxHistoryPage: 200,
    resumeGrace: 0,
    retention: { maxMessages: 0, maxAgeDays: 0 },
    log: (line) => log.push(line),
  });
  try {
    const alice = await arrive(core, "alice");
    const bob = await arrive(core, "bob");
    alice.frames.length = 0;
    bob.frames.length = 0;
    storage.failNext = true;
    // One turn, one commit, which fails.
    alice.send(core, { type: "send", id: 1, room: LOBBY, text: "lost" });
    alice.send(core, { type: "send", id: 2, room: LOBBY, text: "lost too" });
    await committed(core, alice);
    deepEqual(alice.take("error").map((error) => [error.id, error.code]), [
      [1, "storage_failed"],
      [2, "storage_failed"],
    ]);
    deepEqual(bob.take("message"), []);
    ok(log.includes("Cannot store messages: disk full"));
    await alice.send(core, { type: "send", id: 3, room: LOBBY, text: "kept" });
    await committed(core, alice);
    equal(bob.take("message")[0]?.seq, 1);
  } finally {
    await core.shutdown();
    store.close();
  }
});

/** Storage whose history reads wait until the test lets them through. */
class SlowReads extends SqliteStorage {
  #gate: PromiseWithResolvers<void> | undefined;

  /** Makes the next history reads wait. */
  hold(): void {
    this.#gate = Promise.withResolvers();
  }

  /** Lets them through. */
  release(): void {
    this.#gate?.resolve();
    this.#gate = undefined;
  }

  override async recent(room: string, limit: number, before?: number) {
    const gate = this.#gate;
    if (gate !== undefined) await gate.promise;
    return super.recent(room, limit, before);
  }
}

Deno.test("a refusal while a replay waits for storage does not let a live message pass the history", async () => {
  const storage = new SlowReads(new Store(":memory:"));
  await using fixture = await makeCore({}, { store: storage, resumeGrace: 0 });
  const { core } = fixture;
  const alice = await arrive(core, "alice");
  const carol = await arrive(core, "carol");
  await alice.send(core, { type: "send", id: 2, room: LOBBY, text: "old" });
  await committed(core, alice);
  // Dave's replay waits for storage; meanwhile alice talks and carol's empty message is refused.
  storage.hold();
  const dave = new FakePeer();
  dave.session = core.open(dave, ORIGIN);
  const hello = dave.send(core, { type: "hello", id: 1, v: PROTOCOL_VERSION, name: "dave" });
  alice.send(core, { type: "send", id: 3, room: LOBBY, text: "live" });
  carol.send(core, { type: "send", id: 2, room: LOBBY, text: " " });
  await nextTurn();
  storage.release();
  await hello;
  await committed(core, dave);
  deepEqual(
    dave.take("message").map((message) => [message.text, message.history === true]),
    [["old", true], ["live", false]],
  );
});

/** Storage whose first commit fails after the test lets it through. */
class FailingFirst extends SqliteStorage {
  #gate = Promise.withResolvers<void>();
  #failed = false;

  release(): void {
    this.#gate.resolve();
  }

  override async append(messages: readonly StoredMessage[]): Promise<void> {
    if (!this.#failed) {
      this.#failed = true;
      await this.#gate.promise;
      throw new Error("disk full");
    }
    return super.append(messages);
  }
}

Deno.test("a failed commit does not hand out again the numbers of a batch closed behind it", async () => {
  const storage = new FailingFirst(new Store(":memory:"));
  await using fixture = await makeCore({}, { store: storage, resumeGrace: 0 });
  const { core } = fixture;
  const alice = await arrive(core, "alice");
  const bob = await arrive(core, "bob");
  const carol = await arrive(core, "carol");
  alice.send(core, { type: "send", id: 2, room: LOBBY, text: "m1" });
  await nextTurn();
  // While m1's commit is in flight: m2, then a refusal that closes m2's batch behind it.
  bob.send(core, { type: "send", id: 2, room: LOBBY, text: "m2" });
  carol.send(core, { type: "send", id: 2, room: LOBBY, text: " " });
  storage.release();
  await committed(core, carol);
  await carol.send(core, { type: "send", id: 3, room: LOBBY, text: "m3" });
  await committed(core, carol);
  const seqs = alice.take("message").map((message) => [message.text, message.seq]);
  deepEqual(seqs.map(([text]) => text), ["m2", "m3"]);
  ok(Number(seqs[1]![1]) > Number(seqs[0]![1]), JSON.stringify(seqs));
});
