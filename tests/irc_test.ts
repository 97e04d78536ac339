import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { connect, serve } from "../mod.ts";
import { createIdentity } from "../_common/identity.ts";
import { createSelfSignedCertificate } from "../_common/tls.ts";
import { DEFAULT_LIMITS } from "../protocol/limits.ts";
import { LineDecoder } from "../protocol/line_decoder.ts";
import {
  ChatCore,
  type Origin,
  type Outbound,
  type Peer,
  type Session,
  SqliteStorage,
} from "../_server/core.ts";
import { IrcDialect } from "../_server/doors/irc.ts";
import { ircServerName, parseIrc } from "../_server/doors/irc_lines.ts";
import { nameOf, nickOf } from "../_server/doors/irc_names.ts";
import type { DialectHost } from "../_server/doors/dialect.ts";
import { Store } from "../_server/store.ts";
import { RawPeer } from "./_raw.ts";
import { local, unthrottled } from "./_helpers.ts";
import { Prng } from "./_prng.ts";

const encoder = new TextEncoder();

Deno.test("irc nicks show every chat name and lead back to it", async (t) => {
  const cases: [string, string][] = [
    ["alice", "alice"],
    ["Bob_2-x", "Bob_2-x"],
    ["小明", "_|bhto6u"],
    ["José", "Jos|qva"],
    ["a.b", "ab|ba"],
    ["2pac", "_2pac|"],
    ["小_明", "__|co2b880a"],
  ];
  for (const [name, nick] of cases) {
    await t.step(`${name} is ${nick}`, () => {
      equal(nickOf(name), nick);
      equal(nameOf(nick), name);
      ok(
        /^[A-Za-z_|[\]\\`^{}][A-Za-z0-9_|[\]\\`^{}-]*$/.test(nick),
        `"${nick}" is a valid IRC nick`,
      );
    });
  }
  await t.step("nicks that are no encoding are refused", () => {
    for (const nick of ["bob|away", "x|", "|||", "a|!!"]) equal(nameOf(nick), undefined, nick);
  });
  await t.step("random names round-trip, and different names get different nicks", () => {
    const prng = new Prng(15);
    const random = () => prng.next();
    const pools = ["abcXYZ019_-.", "小明李华王芳", "éüñçøß", "𝒜𝒷", "ąčęėįšųūž"];
    const seen = new Map<string, string>();
    for (let i = 0; i < 2000; i++) {
      const pool = [...pools[Math.floor(random() * pools.length)]!];
      let name = String.fromCodePoint(0x4e00 + Math.floor(random() * 20000));
      const length = Math.floor(random() * 31);
      for (let j = 0; j < length; j++) name += pool[Math.floor(random() * pool.length)];
      const nick = nickOf(name);
      equal(nameOf(nick), name);
      equal(nameOf(nick.toUpperCase())?.toLowerCase(), name.toLowerCase());
      const other = seen.get(nick.toLowerCase());
      ok(other === undefined || other.toLowerCase() === name.toLowerCase(), `${name} and ${other}`);
      seen.set(nick.toLowerCase(), name);
    }
  });
});

Deno.test("irc lines are read with tags, source and trailing parameter", () => {
  deepEqual(parseIrc("privmsg #a :hello there"), {
    tags: new Map(),
    command: "PRIVMSG",
    params: ["#a", "hello there"],
  });
  deepEqual(parseIrc("@time=x;+a=b\\sc :nick!u@h JOIN #a"), {
    tags: new Map([["time", "x"], ["+a", "b c"]]),
    command: "JOIN",
    params: ["#a"],
  });
  deepEqual(parseIrc("PING  :"), { tags: new Map(), command: "PING", params: [""] });
  equal(parseIrc(""), undefined);
  equal(parseIrc("@a=b"), undefined);
  equal(parseIrc(":source"), undefined);
});

/** A connection without a socket: the IRC dialect on one side, the lines it wrote on the other. */
class FakeIrc implements Peer, DialectHost {
  readonly core: ChatCore;
  readonly limits = DEFAULT_LIMITS;
  readonly over = false;
  readonly files = false;
  readonly dialect: IrcDialect;
  closed = false;
  #session: Session;
  #lines: string[] = [];
  #decoder = new LineDecoder({ maxBytes: 1 << 20 });
  #waiting: (() => void) | undefined;

  constructor(core: ChatCore) {
    this.core = core;
    const origin: Origin = { remote: "203.0.113.9:5000", ip: "203.0.113.9", ports: [6667] };
    this.#session = core.open(this, origin);
    this.dialect = new IrcDialect(this, "chat/test");
  }

  get session(): Session {
    return this.#session;
  }

  deliver(out: Outbound): void {
    const bytes = this.dialect.render(out, this.#session);
    if (bytes !== null) this.write(bytes);
  }

  adopt(session: Session): void {
    this.#session = session;
  }

  close(): void {
    this.closed = true;
  }

  write(bytes: Uint8Array): void {
    for (const line of this.#decoder.push(bytes)) if (line.ok) this.#lines.push(line.text);
    this.#waiting?.();
  }

  refuse(bytes: Uint8Array): void {
    this.write(bytes);
  }

  handOff(): undefined {
    return undefined;
  }

  /** Types lines, as an IRC client would, waiting for each one the dialect waits for. */
  async type(...lines: string[]): Promise<void> {
    for (const line of lines) {
      for (const decoded of this.dialect.decoder.push(encoder.encode(line + "\r\n"))) {
        await this.dialect.line(decoded);
      }
    }
    // As the door does before it reads more: what was sent is stored and delivered.
    await this.core.settled();
  }

  /** Everything written so far, and forgets it. */
  take(): string[] {
    return this.#lines.splice(0);
  }

  /** Waits for a line that matches (lines before it are dropped). */
  async until(pattern: RegExp): Promise<string> {
    while (true) {
      const index = this.#lines.findIndex((line) => pattern.test(line));
      if (index !== -1) return this.#lines.splice(0, index + 1).at(-1)!;
      this.#lines.length = 0;
      const { promise, resolve } = Promise.withResolvers<void>();
      const timer = setTimeout(resolve, 2000);
      this.#waiting = resolve;
      await promise;
      clearTimeout(timer);
      if (this.#lines.length === 0) throw new Error(`No line matching ${pattern}`);
    }
  }
}

async function makeCore(): Promise<{ core: ChatCore } & AsyncDisposable> {
  const store = new Store(":memory:");
  const core = await ChatCore.open({
    limits: { ...DEFAULT_LIMITS, rateLimit: 1e6, rateBurst: 1e6 },
    software: "chat/test",
    store: new SqliteStorage(store),
    historyOnJoin: 50,
    maxHistoryPage: 200,
    resumeGrace: 0,
    retention: { maxMessages: 0, maxAgeDays: 0 },
    operators: new Set(),
  });
  return {
    core,
    async [Symbol.asyncDispose]() {
      await core.shutdown();
      store.close();
    },
  };
}

async function register(core: ChatCore, nick: string, caps = ""): Promise<FakeIrc> {
  const irc = new FakeIrc(core);
  if (caps !== "") await irc.type("CAP LS 302", `CAP REQ :${caps}`);
  await irc.type(`NICK ${nick}`, "USER u 0 * :Real Name");
  if (caps !== "") await irc.type("CAP END");
  await irc.until(/ 366 /);
  return irc;
}

Deno.test("irc door registers only once CAP END, NICK and USER are in, then welcomes", async () => {
  await using chat = await makeCore();
  const irc = new FakeIrc(chat.core);
  await irc.type("CAP LS 302");
  match(
    irc.take()[0]!,
    /^:chat\.server CAP \* LS :away-notify batch draft\/chathistory echo-message message-tags server-time$/,
  );
  await irc.type("CAP REQ :server-time nope");
  match(irc.take()[0]!, / CAP \* NAK :server-time nope$/);
  await irc.type("CAP REQ :server-time echo-message", "NICK alice", "USER a 0 * :A");
  deepEqual(irc.take(), [":chat.server CAP * ACK :server-time echo-message"]);
  equal(irc.session.name, undefined);
  await irc.type("CAP END");
  const lines = irc.take();
  deepEqual(lines.slice(0, 5).map((line) => line.split(" ")[1]), [
    "001",
    "002",
    "003",
    "004",
    "005",
  ]);
  const support = lines[4]!;
  for (
    const token of [
      "CASEMAPPING=ascii",
      "CHANTYPES=#",
      "NICKLEN=32",
      "CHANNELLEN=50",
      "TOPICLEN=300",
    ]
  ) ok(support.includes(` ${token} `), token);
  ok(lines.some((line) => / 376 alice /.test(line)));
  deepEqual(lines.slice(-3), [
    ":alice!u@chat JOIN #lobby",
    ":chat.server 353 alice = #lobby :alice",
    ":chat.server 366 alice #lobby :End of /NAMES list",
  ]);
  await irc.type("CAP LIST");
  deepEqual(irc.take(), [":chat.server CAP alice LIST :server-time echo-message"]);
});

Deno.test("irc door answers commands before registration and junk with numerics", async () => {
  await using chat = await makeCore();
  const irc = new FakeIrc(chat.core);
  await irc.type("JOIN #a", "FROB x", "NICK", "USER a", "NICK a.b!", "NICK bob|away", "PING");
  deepEqual(irc.take().map((line) => line.split(" ").slice(1, 4).join(" ")), [
    "451 * :You",
    "421 * FROB",
    "431 * :No",
    "461 * USER",
    "432 * a.b!",
    "432 * bob|away",
    "409 * :No",
  ]);
  await irc.type("PING :tok en");
  deepEqual(irc.take(), [":chat.server PONG chat.server :tok en"]);
});

Deno.test("irc door replays a room's history after the JOIN, with server-time", async () => {
  await using chat = await makeCore();
  const alice = await register(chat.core, "alice");
  await alice.type("JOIN #dev", "PRIVMSG #dev :one", "PRIVMSG #dev :\x01ACTION waves\x01");
  const bob = await register(chat.core, "bob", "server-time message-tags");
  bob.take();
  await bob.type("JOIN #dev");
  const lines = bob.take();
  deepEqual(lines.map((line) => line.replace(/time=[^;]+;/, "time=T;")), [
    ":bob!u@chat JOIN #dev",
    ":chat.server 353 bob = #dev :@alice bob",
    ":chat.server 366 bob #dev :End of /NAMES list",
    "@time=T;msgid=#dev/1 :alice!u@chat PRIVMSG #dev :one",
    "@time=T;msgid=#dev/2 :alice!u@chat PRIVMSG #dev :\x01ACTION waves\x01",
  ]);
  match(lines[3]!, /^@time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z;/);
});

Deno.test("irc channel names reach their room whatever the case of their ASCII letters", async () => {
  await using chat = await makeCore();
  const alice = await register(chat.core, "alice");
  await alice.type("JOIN #Dev");
  const bob = await register(chat.core, "bob");
  bob.take();
  await bob.type("JOIN #DEV");
  deepEqual(bob.take().slice(0, 2), [
    ":bob!u@chat JOIN #Dev",
    ":chat.server 353 bob = #Dev :@alice bob",
  ]);
  alice.take();
  await bob.type("PRIVMSG #dev :same room", "TOPIC #dEV :shared");
  deepEqual(alice.take(), [
    ":bob!u@chat PRIVMSG #Dev :same room",
    ":bob!u@chat TOPIC #Dev :shared",
  ]);
  bob.take();
  // Joining it again under another spelling does nothing, as joining it again does.
  await bob.type("JOIN #dev");
  deepEqual(bob.take(), []);
});

Deno.test("irc door echoes its user's own messages only with echo-message", async () => {
  await using chat = await makeCore();
  const plain = await register(chat.core, "plain");
  const echo = await register(chat.core, "echo", "echo-message");
  plain.take();
  echo.take();
  await plain.type("PRIVMSG #lobby :from plain");
  deepEqual(plain.take(), []);
  deepEqual(echo.take(), [":plain!u@chat PRIVMSG #lobby :from plain"]);
  await echo.type("PRIVMSG #lobby :from echo", "NOTICE plain :psst");
  deepEqual(echo.take(), [
    ":echo!u@chat PRIVMSG #lobby :from echo",
    ":echo!u@chat NOTICE plain :psst",
  ]);
  deepEqual(plain.take(), [
    ":echo!u@chat PRIVMSG #lobby :from echo",
    ":echo!u@chat NOTICE plain :psst",
  ]);
});

Deno.test("irc door tells topics, nick changes, parts and one quit per person", async () => {
  await using chat = await makeCore();
  const alice = await register(chat.core, "alice");
  const bob = await register(chat.core, "bob");
  await alice.type("JOIN #dev");
  await bob.type("JOIN #dev");
  alice.take();
  bob.take();
  await bob.type("TOPIC #dev :new topic", "NICK 小明", "PART #dev", "JOIN #dev");
  deepEqual(bob.take().slice(0, 3), [
    ":bob!u@chat TOPIC #dev :new topic",
    ":bob!u@chat NICK _|bhto6u",
    ":_|bhto6u!u@chat PART #dev",
  ]);
  await alice.type("TOPIC #dev", "WHOIS _|bhto6u");
  await bob.type("QUIT :gone");
  const lines = alice.take();
  deepEqual(lines, [
    ":bob!u@chat TOPIC #dev :new topic",
    ":bob!u@chat NICK _|bhto6u",
    ":_|bhto6u!u@chat PART #dev",
    ":_|bhto6u!u@chat JOIN #dev",
    ":chat.server 332 alice #dev :new topic",
    ":chat.server 311 alice _|bhto6u u chat * :Real Name",
    ":chat.server 312 alice _|bhto6u chat.server :chat",
    ":chat.server 318 alice _|bhto6u :End of /WHOIS list",
    ":_|bhto6u!u@chat QUIT :Quit: gone",
  ]);
  deepEqual(bob.take(), ["ERROR :Closing link (Quit: gone)"]);
  ok(bob.closed);
});

Deno.test("irc door refuses a name bound to a key, and tells why", async () => {
  await using chat = await makeCore();
  const owner = new FakeIrc(chat.core);
  owner.session.proved("SHA256:owner");
  await owner.type("NICK alice", "USER a 0 * :A");
  await owner.until(/ 001 alice /);
  await owner.type("QUIT");
  const irc = new FakeIrc(chat.core);
  await irc.type("NICK alice", "USER a 0 * :A");
  const refusal = await irc.until(/ 433 /);
  match(refusal, /^:chat\.server 433 \* alice :The name "alice" belongs to another key/);
  equal(irc.session.name, undefined);
  await irc.type("NICK alice_");
  await irc.until(/ 001 alice_ /);
});

Deno.test("irc door maps refusals of the core to numerics", async () => {
  await using chat = await makeCore();
  const alice = await register(chat.core, "alice");
  await register(chat.core, "bob");
  alice.take();
  await alice.type(
    "PRIVMSG #nowhere :hi",
    "PRIVMSG nobody :hi",
    "PRIVMSG bob :",
    "NOTICE nobody :hi",
    "PART #nowhere",
    "JOIN #bad!name",
    "NICK bob",
    "KICK #lobby bob",
    "MODE #lobby",
    "MODE #lobby +m",
  );
  deepEqual(alice.take().map((line) => line.split(" ").slice(1, 4).join(" ")), [
    "404 alice #nowhere",
    "401 alice nobody",
    "412 alice :No",
    "442 alice #nowhere",
    "403 alice #bad!name",
    "433 alice bob",
    "482 alice #lobby",
    "324 alice #lobby",
    "482 alice #lobby",
  ]);
});

Deno.test("irc users go away and come back, and the others see it", async () => {
  await using chat = await makeCore();
  const alice = await register(chat.core, "alice", "echo-message");
  const bob = await register(chat.core, "bob");
  await alice.type("CAP LS 302");
  ok(alice.take().join("\n").includes("away-notify"));
  await bob.type("AWAY :at lunch, back at 2");
  deepEqual(bob.take(), [":chat.server 306 bob :You have been marked as being away"]);
  equal(chat.core.size, 2);

  await alice.type("WHOIS bob", "WHO #lobby", "WHO bob", "PRIVMSG bob :hi", "NOTICE bob :psst");
  deepEqual(alice.take(), [
    ":chat.server 311 alice bob u chat * :Real Name",
    ":chat.server 312 alice bob chat.server :chat",
    ":chat.server 301 alice bob :at lunch, back at 2",
    ":chat.server 318 alice bob :End of /WHOIS list",
    ":chat.server 352 alice #lobby u chat chat.server alice H :0 Real Name",
    ":chat.server 352 alice #lobby u chat chat.server bob G :0 Real Name",
    ":chat.server 315 alice #lobby :End of WHO list",
    ":chat.server 352 alice * u chat chat.server bob G :0 Real Name",
    ":chat.server 315 alice bob :End of WHO list",
    ":alice!u@chat PRIVMSG bob :hi",
    ":chat.server 301 alice bob :at lunch, back at 2",
    ":alice!u@chat NOTICE bob :psst",
  ]);
  // Without away-notify, alice was not told bob went away: only asked, she learns it.
  deepEqual(bob.take(), [":alice!u@chat PRIVMSG bob :hi", ":alice!u@chat NOTICE bob :psst"]);

  // Too long an away message is refused, and the one before stays.
  await bob.type(`AWAY :${"z".repeat(301)}`);
  match(bob.take().join("\n"), /NOTICE bob :Away message is longer than 300 characters/);
  // An away message in CJK (set by a client that is not on IRC) is cut to fit a line of 512
  // bytes, on a character boundary.
  await chat.core.receive(bob.session, { type: "away", id: 1000, message: "忙".repeat(300) });
  await alice.type("PRIVMSG bob :hi");
  const cut = alice.take().find((line) => line.includes(" 301 "))!;
  ok(encoder.encode(cut).length <= 510, `${encoder.encode(cut).length} bytes`);
  match(cut, /^:chat\.server 301 alice bob :忙+$/);

  bob.take();
  await bob.type("AWAY");
  deepEqual(bob.take(), [":chat.server 305 bob :You are no longer marked as being away"]);
  await bob.type("AWAY :again", "AWAY :");
  deepEqual(bob.take().map((line) => line.split(" ")[1]), ["306", "305"]);
  await alice.type("WHOIS bob", "WHO bob", "PRIVMSG bob :back?");
  const lines = alice.take();
  ok(!lines.some((line) => line.includes(" 301 ")), lines.join("\n"));
  ok(lines.includes(":chat.server 352 alice * u chat chat.server bob H :0 Real Name"));
});

Deno.test("irc door shows the ident and real name an irc user gave in WHO and WHOIS", async () => {
  await using chat = await makeCore();
  const alice = await register(chat.core, "alice");
  const carol = new FakeIrc(chat.core);
  await carol.type("NICK carol", "USER ~cj 0 * :Carol  Jones ");
  await carol.until(/ 366 /);
  // Someone who is not on IRC keeps "u" and the chat name.
  const dora = chat.core.open(
    { deliver() {}, close() {}, adopt() {}, files: false },
    { remote: "203.0.113.10:5000", ip: "203.0.113.10", ports: [7000] },
  );
  await chat.core.receive(dora, { type: "hello", id: 1, v: 1, name: "dora" });
  await chat.core.settled();
  alice.take();

  await alice.type("WHOIS carol", "WHO carol", "WHOIS dora", "WHO dora");
  deepEqual(alice.take().filter((line) => / (311|352) /.test(line)), [
    ":chat.server 311 alice carol ~cj chat * :Carol  Jones",
    ":chat.server 352 alice * ~cj chat chat.server carol H :0 Carol  Jones",
    ":chat.server 311 alice dora u chat * :dora",
    ":chat.server 352 alice * u chat chat.server dora H :0 dora",
  ]);
  await alice.type("WHO #lobby");
  deepEqual(alice.take().filter((line) => / 352 /.test(line)).map((line) => line.split(" ")[4]), [
    "u",
    "~cj",
    "u",
  ]);

  // The words follow a nick change, and the old name does not keep them.
  await carol.type("NICK cj");
  await alice.type("WHOIS cj");
  equal(
    alice.take().find((line) => / 311 /.test(line)),
    ":chat.server 311 alice cj ~cj chat * :Carol  Jones",
  );
  const dave = await register(chat.core, "carol");
  await alice.type("WHOIS carol");
  equal(
    alice.take().find((line) => / 311 /.test(line)),
    ":chat.server 311 alice carol u chat * :Real Name",
  );

  // Idents lose what an ident may not hold, and long ones and long real names are cut.
  const eve = new FakeIrc(chat.core);
  await eve.type("NICK eve", `USER a@b!c:d${"x".repeat(40)} 0 * :${"é".repeat(150)}`);
  await eve.until(/ 366 /);
  await alice.type("WHOIS eve");
  equal(
    alice.take().find((line) => / 311 /.test(line)),
    `:chat.server 311 alice eve abcd${"x".repeat(12)} chat * :${"é".repeat(100)}`,
  );
  // Once carol (now cj) has quit, a new cj is someone else.
  await carol.type("QUIT");
  ok(carol.closed);
  await dave.type("NICK cj");
  await alice.type("WHOIS cj");
  equal(
    alice.take().find((line) => / 311 /.test(line)),
    ":chat.server 311 alice cj u chat * :Real Name",
  );
});

Deno.test("irc door splits long and multi-line messages into lines of 512 bytes", async () => {
  await using chat = await makeCore();
  const irc = await register(chat.core, "reader");
  irc.take();
  const text = "长".repeat(400) + "\nsecond line";
  const writer = new FakeIrc(chat.core);
  writer.session.proved("SHA256:w");
  await writer.type("NICK writer", "USER w 0 * :W");
  await writer.until(/ 366 /);
  // A chat client's message may be long and hold several lines.
  await chat.core.receive(writer.session, { type: "send", id: 99, room: "#lobby", text });
  const lines = [await irc.until(/PRIVMSG/), ...irc.take()];
  ok(lines.length >= 3);
  for (const line of lines) ok(encoder.encode(line + "\r\n").length <= 512, line);
  equal(
    lines.map((line) => line.slice(line.indexOf(" :", 1) + 2)).join(""),
    "长".repeat(400) + "second line",
  );
});

/** Reads lines until one matches; closes the connection (so the test fails) after 10 s. */
async function expect(peer: RawPeer, pattern: RegExp): Promise<string> {
  const timer = setTimeout(() => peer.close(), 10_000);
  try {
    return await peer.until(pattern);
  } finally {
    clearTimeout(timer);
  }
}

/** An IRC client over a loopback socket. */
async function ircClient(port: number, nick: string, caps = ""): Promise<RawPeer> {
  const peer = await RawPeer.connect(port);
  if (caps !== "") await peer.write(`CAP LS 302\r\nCAP REQ :${caps}\r\n`);
  await peer.write(
    `NICK ${nick}\r\nUSER ${nick} 0 * :${nick}\r\n${caps !== "" ? "CAP END\r\n" : ""}`,
  );
  await expect(peer, / 366 /);
  return peer;
}

Deno.test("irc, library and nc users in one room see each other", async () => {
  await using server = await serve({ ...unthrottled, ircPort: 0 });
  const irc = server.ircAddr!.port;
  const { port } = server.addr;
  await using ana = await ircClient(irc, "ana");
  await using lib = await connect({ port, name: "小明" });
  await expect(ana, /^:_\|bhto6u!u@chat JOIN #lobby$/);
  await using nc = await RawPeer.connect(port);
  await nc.write("ned\n");
  await expect(ana, /^:ned!u@chat JOIN #lobby$/);

  await ana.write("PRIVMSG #lobby :你好 everyone\r\n");
  equal((await lib.next("message", { timeout: 2000 })).text, "你好 everyone");
  await expect(nc, /<ana> 你好 everyone/);

  await lib.send("hi ana");
  await expect(ana, /^:_\|bhto6u!u@chat PRIVMSG #lobby :hi ana$/);
  await lib.send("waves", { action: true });
  const action = await expect(ana, /^:_\|bhto6u!u@chat PRIVMSG #lobby :.ACTION waves.$/);
  ok(action.endsWith(":\x01ACTION waves\x01"));
  await nc.write("hello from nc\n");
  await expect(ana, /^:ned!u@chat PRIVMSG #lobby :hello from nc$/);

  // A DM each way: the IRC user addresses 小明 by the nick it sees.
  await ana.write("PRIVMSG _|bhto6u :\x01ACTION nods\x01\r\n");
  const dm = await lib.next("dm", { timeout: 2000 });
  deepEqual([dm.from, dm.text, dm.action], ["ana", "nods", true]);
  await lib.dm("ana", "私信");
  await expect(ana, /^:_\|bhto6u!u@chat PRIVMSG ana :私信$/);

  await lib.topic("#lobby", "今日话题");
  await expect(ana, /^:_\|bhto6u!u@chat TOPIC #lobby :今日话题$/);
  await ana.write("TOPIC #lobby :from irc\r\n");
  equal((await lib.next("topic", { timeout: 2000 })).topic, "from irc");

  await ana.write("NICK ana2\r\n");
  await expect(ana, /^:ana!u@chat NICK ana2$/);
  const renamed = await lib.next("nick", { timeout: 2000 });
  deepEqual([renamed.from, renamed.to], ["ana", "ana2"]);
  await expect(nc, /ana is now known as ana2/);

  await nc.write("/quit\n");
  await expect(ana, /^:ned!u@chat QUIT :Quit$/);
  await lib.close();
  await expect(ana, /^:_\|bhto6u!u@chat QUIT :Quit$/);

  // A connection that breaks is lost, not quit.
  const lost = await RawPeer.connect(port);
  await lost.send({ type: "hello", id: 1, v: 1, name: "lost" });
  await lost.frame("welcome");
  await expect(ana, /^:lost!u@chat JOIN #lobby$/);
  lost.close();
  await expect(ana, /^:lost!u@chat QUIT :Connection lost$/);
});

Deno.test("irc door survives long lines, bad UTF-8, huge tags and junk", async () => {
  await using server = await serve({ ...local, ircPort: 0 });
  await using irc = await ircClient(server.ircAddr!.port, "tough");
  await irc.write(`PRIVMSG #lobby :${"x".repeat(600)}\r\n`);
  await expect(irc, /^:chat\.server 417 tough :Input line was too long$/);
  await irc.write(`@+a=${"y".repeat(5000)} PRIVMSG #lobby :hi\r\n`);
  await expect(irc, / 417 tough /);
  await irc.write(new Uint8Array([...encoder.encode("PRIVMSG #lobby :"), 0xff, 0xfe, 13, 10]));
  await expect(irc, /^:chat\.server FAIL \* INVALID_UTF8 /);
  await irc.write(`${"z".repeat(100_000)}\r\n`);
  await expect(irc, / 417 tough /);
  await irc.write("\x00\x01\x02 junk\r\n:only.a.source\r\n   \r\n@tags-only\r\n");
  const junk = await expect(irc, / 421 tough .* :Unknown command$/);
  ok(junk.includes(" 421 tough ??? :"), "control characters are not echoed");
  await irc.write("PING :still here\r\n");
  await expect(irc, /^:chat\.server PONG chat\.server :still here$/);
});

Deno.test("irc port speaks TLS when the server does", async () => {
  const { cert, key } = await createSelfSignedCertificate(["localhost", "127.0.0.1"]);
  await using server = await serve({ ...local, ircPort: 0, tls: { cert, key } });
  const conn = await Deno.connectTls({
    hostname: "127.0.0.1",
    port: server.ircAddr!.port,
    caCerts: [cert],
  });
  await using irc = RawPeer.over(conn);
  await irc.write("NICK secure\r\nUSER s 0 * :s\r\n");
  await expect(irc, /^:chat\.server 001 secure /);
});

Deno.test("irc door takes the server password from PASS", async () => {
  await using server = await serve({ ...local, ircPort: 0, password: "s3cret" });
  await using wrong = await RawPeer.connect(server.ircAddr!.port);
  await wrong.write("PASS nope\r\nNICK w\r\nUSER w 0 * :w\r\n");
  await expect(wrong, /^:chat\.server 464 \* :Wrong password$/);
  await wrong.eof();
  await using right = await RawPeer.connect(server.ircAddr!.port);
  await right.write("PASS s3cret\r\nNICK r\r\nUSER r 0 * :r\r\n");
  await expect(right, / 001 r /);
});

Deno.test("irc door refuses a name bound to a key over a socket", async () => {
  await using server = await serve({ ...local, ircPort: 0 });
  const identity = await createIdentity();
  await using owner = await connect({ port: server.addr.port, name: "keyed", identity });
  await using irc = await RawPeer.connect(server.ircAddr!.port);
  await irc.write("NICK keyed\r\nUSER k 0 * :k\r\n");
  await expect(irc, /^:chat\.server 433 \* keyed :The name "keyed" belongs to another key/);
  equal(owner.name, "keyed");
});

Deno.test("irc users are muted, banned and kicked like everyone else", async () => {
  const identity = await createIdentity();
  await using server = await serve({ ...local, ircPort: 0, operators: [identity.fingerprint] });
  await using op = await connect({ port: server.addr.port, name: "op", identity });
  await using irc = await ircClient(server.ircAddr!.port, "noisy");
  await op.mute("noisy", { duration: 600, reason: "calm down" });
  await irc.write("PRIVMSG #lobby :still talking\r\n");
  await expect(irc, /^:chat\.server 404 noisy #lobby :You are muted until .*: calm down$/);
  await irc.write("KICK #lobby op\r\n");
  await expect(irc, /^:chat\.server 482 noisy #lobby /);
  await op.ban("noisy", { duration: 600, reason: "spam" });
  await expect(irc, /^ERROR :Banned by op until .*: spam$/);
  await irc.eof();
  await using again = await RawPeer.connect(server.ircAddr!.port);
  await again.write("NICK noisy\r\nUSER n 0 * :n\r\n");
  await expect(again, /^(ERROR :You are banned|:chat\.server 465 \* :You are banned)/);
});

Deno.test("irc users see an operator's kick as a KICK", async () => {
  const identity = await createIdentity();
  await using server = await serve({ ...local, ircPort: 0, operators: [identity.fingerprint] });
  await using op = await connect({ port: server.addr.port, name: "op", identity });
  await using irc = await ircClient(server.ircAddr!.port, "watcher");
  await using victim = await connect({ port: server.addr.port, name: "victim" });
  await expect(irc, /^:victim!u@chat JOIN #lobby$/);
  await op.kick("victim", "enough");
  await expect(irc, /^:chat\.server KICK #lobby victim :Kicked$/);
  void victim;
});

Deno.test("an irc flooder is cut off, and the others are told why", async () => {
  await using server = await serve({ ...local, ircPort: 0, floodTimeout: 500 });
  await using lib = await connect({ port: server.addr.port, name: "witness" });
  await using flooder = await ircClient(server.ircAddr!.port, "flooder");
  const told = expect(
    flooder,
    /^ERROR :Disconnected: you kept sending lines faster than 10 a second/,
  );
  const chunk = "PRIVMSG #lobby :flood\r\n".repeat(500);
  const flood = (async () => {
    try {
      while (true) await flooder.write(chunk);
    } catch {
      // Closed by the server.
    }
  })();
  await told;
  await flood;
  let leave;
  do leave = await lib.next("leave", { timeout: 10_000 }); while (leave.name !== "flooder");
  equal(leave.reason, "flood");
});

Deno.test("an irc reader that stops reading is disconnected, and others are told", async () => {
  await using server = await serve({ ...unthrottled, ircPort: 0, maxSendQueueBytes: 64 * 1024 });
  await using sleeper = await ircClient(server.ircAddr!.port, "sleeper");
  await using lib = await connect({ port: server.addr.port, name: "talker" });
  const text = "x".repeat(8000);
  let gone = false;
  const left = lib.next("leave", { timeout: 30_000 }).then((event) => {
    gone = true;
    return event;
  });
  for (let i = 0; i < 2000 && !gone; i++) await lib.send(text);
  const event = await left;
  deepEqual([event.name, event.reason], ["sleeper", "send_queue_exceeded"]);
  void sleeper;
});

Deno.test("irc door pages a room's history with CHATHISTORY, in a batch", async () => {
  await using chat = await makeCore();
  const writer = await register(chat.core, "writer");
  await writer.type("JOIN #dev", "PRIVMSG #dev :one", "PRIVMSG #dev :two", "PRIVMSG #dev :three");
  const reader = await register(
    chat.core,
    "reader",
    "batch draft/chathistory server-time message-tags",
  );
  await reader.type("JOIN #dev");
  reader.take();
  const page = async (line: string) => {
    await reader.type(line);
    return reader.take().map((text) => text.replace(/time=[^;]+;/, ""));
  };
  deepEqual(await page("CHATHISTORY LATEST #dev * 2"), [
    ":chat.server BATCH +h1 chathistory #dev",
    "@batch=h1;msgid=#dev/2 :writer!u@chat PRIVMSG #dev :two",
    "@batch=h1;msgid=#dev/3 :writer!u@chat PRIVMSG #dev :three",
    ":chat.server BATCH -h1",
  ]);
  deepEqual(await page("CHATHISTORY BEFORE #dev msgid=#dev/3 10"), [
    ":chat.server BATCH +h2 chathistory #dev",
    "@batch=h2;msgid=#dev/1 :writer!u@chat PRIVMSG #dev :one",
    "@batch=h2;msgid=#dev/2 :writer!u@chat PRIVMSG #dev :two",
    ":chat.server BATCH -h2",
  ]);
  deepEqual(await page("CHATHISTORY AFTER #dev msgid=#dev/2 10"), [
    ":chat.server BATCH +h3 chathistory #dev",
    "@batch=h3;msgid=#dev/3 :writer!u@chat PRIVMSG #dev :three",
    ":chat.server BATCH -h3",
  ]);
  deepEqual(await page("CHATHISTORY LATEST writer * 10"), [
    ":chat.server BATCH +h4 chathistory writer",
    ":chat.server BATCH -h4",
  ]);
  deepEqual((await page("CHATHISTORY AROUND #dev * 10")).map((line) => line.split(" ")[3]), [
    "INVALID_PARAMS",
  ]);
  deepEqual((await page("CHATHISTORY LATEST #nowhere * 10")).map((line) => line.split(" ")[3]), [
    "INVALID_TARGET",
  ]);
  deepEqual(
    (await page("CHATHISTORY BEFORE #dev timestamp=2026-01-01T00:00:00Z 10")).map((line) =>
      line.split(" ")[3]
    ),
    ["INVALID_MSGREFTYPE"],
  );
});

Deno.test("irc door answers thousands of random lines without failing", async () => {
  await using chat = await makeCore();
  const prng = new Prng(2026);
  const pick = <T>(items: readonly T[]): T => items[prng.int(items.length)]!;
  const commands = [
    "CAP",
    "PASS",
    "NICK",
    "USER",
    "PING",
    "PONG",
    "JOIN",
    "PART",
    "PRIVMSG",
    "NOTICE",
    "TOPIC",
    "NAMES",
    "LIST",
    "WHO",
    "WHOIS",
    "WHOWAS",
    "MODE",
    "KICK",
    "MOTD",
    "VERSION",
    "AWAY",
    "OPER",
    "TAGMSG",
    "CHATHISTORY",
    "AUTHENTICATE",
    "QUIT",
    "FOO",
    "001",
    "",
  ];
  const words = [
    "#lobby",
    "#dev",
    "#",
    "#bad name",
    "小明",
    "_|bhto6u",
    "bob|away",
    "*",
    "0",
    "LS",
    "REQ",
    "END",
    "LATEST",
    "msgid=#dev/1",
    "+b",
    "-o",
    ":",
    ":text with spaces",
    "\x01ACTION waves\x01",
    "\x01VERSION\x01",
    "\x00",
    "é".repeat(40),
    "a,b,,c",
    "@",
  ];
  const clients = [await register(chat.core, "fuzz1"), await register(chat.core, "fuzz2")];
  clients.push(new FakeIrc(chat.core));
  for (let i = 0; i < 3000; i++) {
    const client = pick(clients);
    const params = Array.from({ length: prng.int(5) }, () => pick(words));
    const tags = prng.int(10) === 0 ? `@${pick(words)}=${pick(words)} ` : "";
    const line = `${tags}${pick(commands)} ${params.join(" ")}`;
    // A QUIT ends a client: the others carry on.
    if (line.includes("QUIT") && client !== clients[2]) continue;
    await client.type(line);
    for (const reply of client.take()) {
      ok(!reply.includes("The server failed"), `${JSON.stringify(line)} made ${reply}`);
    }
  }
  // Everyone is still answered.
  for (const client of clients.slice(0, 2)) {
    await client.type("PING :alive");
    deepEqual(client.take().at(-1), ":chat.server PONG chat.server :alive");
  }
});

Deno.test("irc readers get a burst of room messages whole and in order", async () => {
  await using server = await serve({ ...unthrottled, ircPort: 0 });
  await using plain = await ircClient(server.ircAddr!.port, "plain");
  await using tagged = await ircClient(server.ircAddr!.port, "tagged", "server-time message-tags");
  await using lib = await connect({ port: server.addr.port, name: "burst" });
  await Promise.all(Array.from({ length: 200 }, (_, i) => lib.send(`消息 ${i}`)));
  for (let i = 0; i < 200; i++) {
    await expect(plain, new RegExp(`^:burst!u@chat PRIVMSG #lobby :消息 ${i}$`));
    await expect(
      tagged,
      new RegExp(`^@time=[^;]+;msgid=#lobby/${i + 1} :burst!u@chat PRIVMSG #lobby :消息 ${i}$`),
    );
  }
});

Deno.test("irc door pings a quiet client and drops one that never answers", async () => {
  await using server = await serve({ ...local, ircPort: 0, idleTimeout: 1500 });
  await using watcher = await connect({ port: server.addr.port, name: "watcher" });
  await using sleepy = await ircClient(server.ircAddr!.port, "sleepy");
  await expect(sleepy, /^PING :chat\.server$/);
  await expect(sleepy, /^ERROR :Nothing was heard from you for 1\.5 s/);
  let leave;
  do leave = await watcher.next("leave", { timeout: 10_000 }); while (leave.name !== "sleepy");
  equal(leave.reason, "timeout");
});

Deno.test("irc door speaks under the server name it is given", async (t) => {
  await t.step("--irc-server-name names the server in its lines and PONG", async () => {
    await using server = await serve({ ...local, ircPort: 0, ircServerName: "irc.example.org" });
    await using irc = await RawPeer.connect(server.ircAddr!.port);
    await irc.write("NICK named\r\nUSER n 0 * :n\r\n");
    await expect(irc, /^:irc\.example\.org 001 named /);
    await expect(irc, /^:irc\.example\.org 004 named irc\.example\.org /);
    await expect(irc, / 366 /);
    await irc.write("PING tok\r\n");
    await expect(irc, /^:irc\.example\.org PONG irc\.example\.org :tok$/);
  });
  await t.step("the default is the host name when it is one, else chat.server", () => {
    equal(ircServerName(undefined, "chat.example.org"), "chat.example.org");
    equal(ircServerName(undefined, "127.0.0.1"), "chat.server");
    equal(ircServerName(undefined, "::1"), "chat.server");
    equal(ircServerName(undefined, "localhost"), "chat.server");
    equal(ircServerName(undefined, undefined), "chat.server");
  });
  await t.step("a name that is no host name is refused before listening", async () => {
    for (const name of ["nodot", "a b.c", "bad..name", "-x.y", `${"a".repeat(60)}.org`]) {
      await rejects(
        serve({ ...local, ircPort: 0, ircServerName: name }),
        (error: Error) =>
          error instanceof TypeError && /^Invalid IRC server name "/.test(error.message),
        name,
      );
    }
  });
});

Deno.test("part and quit reasons reach irc, library and nc users", async () => {
  await using server = await serve({ ...unthrottled, ircPort: 0 });
  const irc = server.ircAddr!.port;
  const { port } = server.addr;
  await using ana = await ircClient(irc, "ana");
  await using lib = await connect({ port, name: "lib" });
  await using nc = await RawPeer.connect(port);
  await nc.write("ned\n");
  await expect(ana, /^:ned!u@chat JOIN #lobby$/);
  await using bob = await ircClient(irc, "bob");
  await expect(nc, /bob joined #lobby/);

  await bob.write("PART #lobby :see you later\r\n");
  await expect(bob, /^:bob!u@chat PART #lobby :see you later$/);
  await expect(ana, /^:bob!u@chat PART #lobby :see you later$/);
  const parted = await lib.next("leave", { timeout: 2000 });
  deepEqual([parted.name, parted.reason, parted.message], ["bob", "part", "see you later"]);
  await expect(nc, /<- bob left #lobby \(left the room: see you later\)$/);

  await bob.write("JOIN #lobby\r\nQUIT :gone home\r\n");
  await expect(ana, /^:bob!u@chat QUIT :Quit: gone home$/);
  const quit = await lib.next("leave", { timeout: 2000 });
  deepEqual([quit.name, quit.reason, quit.message], ["bob", "quit", "gone home"]);
  await expect(nc, /<- bob left #lobby \(quit: gone home\)$/);

  // The library and nc users give reasons too; IRC users see them as IRC shows them.
  await lib.join("#dev");
  await ana.write("JOIN #dev\r\n");
  await expect(ana, / 366 ana #dev /);
  await lib.leave("#dev", { reason: "lunch" });
  await expect(ana, /^:lib!u@chat PART #dev :lunch$/);
  await nc.write("/quit off to bed\n");
  await expect(ana, /^:ned!u@chat QUIT :Quit: off to bed$/);
  await lib.close({ reason: "bye now" });
  await expect(ana, /^:lib!u@chat QUIT :Quit: bye now$/);
});

Deno.test("a reason longer than 300 characters is refused, and cut by the irc door", async () => {
  await using server = await serve({ ...unthrottled, ircPort: 0 });
  await using lib = await connect({ port: server.addr.port, name: "lib" });
  await lib.join("#dev");
  await rejects(
    lib.leave("#dev", { reason: "x".repeat(301) }),
    (error: Error) => /^Reason is longer than 300 characters$/.test(error.message),
  );
  deepEqual(lib.joined.includes("#dev"), true, "refused: still in the room");
  await using ana = await ircClient(server.ircAddr!.port, "ana");
  await ana.write(`JOIN #dev\r\nPART #dev :${"x".repeat(350)}\r\n`);
  const parted = await lib.next("leave", { timeout: 2000 });
  equal(parted.message, "x".repeat(300));
});

Deno.test("text from others never breaks an irc line", async () => {
  await using server = await serve({ ...unthrottled, ircPort: 0 });
  await using ana = await ircClient(server.ircAddr!.port, "ana");
  await using lib = await connect({ port: server.addr.port, name: "lib" });
  await lib.topic("#lobby", "a\r\n:evil!u@chat PRIVMSG ana :forged\0");
  const line = await expect(ana, /TOPIC #lobby/);
  equal(line, ":lib!u@chat TOPIC #lobby :a  :evil!u@chat PRIVMSG ana :forged ");
  await lib.leave("#lobby", { reason: "x\nQUIT :y" });
  await expect(ana, /^:lib!u@chat PART #lobby :x QUIT :y$/);
});

Deno.test("a notice stays a notice in every door, and is never answered", async () => {
  await using server = await serve({ ...unthrottled, ircPort: 0 });
  const irc = server.ircAddr!.port;
  const { port } = server.addr;
  await using ana = await ircClient(irc, "ana");
  await using bot = await connect({ port, name: "bot" });
  await using nc = await RawPeer.connect(port);
  await nc.write("ned\n");
  await expect(ana, /^:ned!u@chat JOIN #lobby$/);

  await ana.write("NOTICE #lobby :hello there\r\n");
  const notice = await bot.next("message", { timeout: 2000 });
  deepEqual([notice.text, notice.notice], ["hello there", true]);
  await expect(nc, /\] -ana- hello there$/);

  const sent = await bot.send("build passed", { notice: true });
  equal(sent.notice, true);
  await expect(ana, /^:bot!u@chat NOTICE #lobby :build passed$/);
  await expect(nc, /\] -bot- build passed$/);
  await bot.send("a message");
  await expect(ana, /^:bot!u@chat PRIVMSG #lobby :a message$/);

  // A private notice to someone away gets no automatic reply, from either side.
  await ana.write("AWAY :lunch\r\n");
  await expect(ana, / 306 ana /);
  const quiet = await bot.dm("ana", "ping result", { notice: true });
  deepEqual([quiet.notice, quiet.away], [true, undefined]);
  await expect(ana, /^:bot!u@chat NOTICE ana :ping result$/);
  equal((await bot.dm("ana", "are you there")).away, "lunch");
  await ana.write("NOTICE bot :automatic\r\nPING :sync\r\n");
  const dm = await bot.next("dm", { timeout: 2000 });
  deepEqual([dm.text, dm.notice], ["automatic", true]);
});

Deno.test("irc TOPIC and KICK on a channel nobody is in are 403, on one others are in 442", async () => {
  await using chat = await makeCore();
  const alice = await register(chat.core, "alice");
  const bob = await register(chat.core, "bob");
  await bob.type("JOIN #dev");
  alice.take();
  await alice.type("TOPIC #nowhere", "TOPIC #dev", "TOPIC #dev :mine now", "TOPIC #bad!name");
  await alice.type("KICK #nowhere bob", "KICK #dev bob");
  deepEqual(alice.take().map((line) => line.split(" ").slice(1, 4).join(" ")), [
    "403 alice #nowhere",
    "442 alice #dev",
    "442 alice #dev",
    "403 alice #bad!name",
    "403 alice #nowhere",
    "442 alice #dev",
  ]);
});

Deno.test("away-notify: irc and library users who asked are told of away changes", async () => {
  await using server = await serve({ ...unthrottled, ircPort: 0 });
  const irc = server.ircAddr!.port;
  const { port } = server.addr;
  await using told = await ircClient(irc, "told", "away-notify server-time");
  await using plain = await ircClient(irc, "plain");
  await using lib = await connect({ port, name: "lib" });
  await using nc = await RawPeer.connect(port);
  await nc.write("ned\n");
  await expect(told, /JOIN #lobby$/);

  await lib.away("lunch");
  await expect(told, /^@time=\S+ :lib!u@chat AWAY :lunch$/);
  await plain.write("AWAY :brb\r\n");
  await expect(told, /^@time=\S+ :plain!u@chat AWAY :brb$/);
  const away = await lib.next("away", { timeout: 2000 });
  deepEqual([away.name, away.message], ["plain", "brb"]);
  await plain.write("AWAY\r\n");
  await expect(told, /^@time=\S+ :plain!u@chat AWAY$/);
  equal((await lib.next("away", { timeout: 2000 })).message, "");
  // Setting the same message again tells nobody; the others never saw an AWAY line.
  await lib.away("lunch");
  await lib.away("");
  await expect(told, /^@time=\S+ :lib!u@chat AWAY$/);
  await plain.write("PING :sync\r\n");
  for (let line = await plain.line(); !line?.includes("PONG"); line = await plain.line()) {
    ok(line !== null && !line.includes(" AWAY"), `${line}`);
  }
  // An nc user (who cannot ask) is not told either.
  await nc.write("/who\n");
  for (let line = await nc.line(); !line?.includes("lib"); line = await nc.line()) {
    ok(line !== null && !line.includes("away"), `${line}`);
  }
});

Deno.test("a room's creator is its operator: @ in NAMES and WHO, +t, KICK", async () => {
  await using chat = await makeCore();
  const alice = await register(chat.core, "alice");
  const bob = await register(chat.core, "bob");
  await alice.type("JOIN #dev");
  await bob.type("JOIN #dev");
  alice.take();
  deepEqual(bob.take().slice(1, 2), [":chat.server 353 bob = #dev :@alice bob"]);
  await bob.type("NAMES #dev", "WHO #dev", "NAMES #lobby");
  deepEqual(bob.take(), [
    ":chat.server 353 bob = #dev :@alice bob",
    ":chat.server 366 bob #dev :End of /NAMES list",
    ":chat.server 352 bob #dev u chat chat.server alice H@ :0 Real Name",
    ":chat.server 352 bob #dev u chat chat.server bob H :0 Real Name",
    ":chat.server 315 bob #dev :End of WHO list",
    // Nobody created #lobby: only the server's operators are its operators.
    ":chat.server 353 bob = #lobby :alice bob",
    ":chat.server 366 bob #lobby :End of /NAMES list",
  ]);

  // +t: only operators set the topic; only operators change it.
  await bob.type("MODE #dev +t", "TOPIC #dev :free for all");
  deepEqual(bob.take(), [
    ":chat.server 482 bob #dev :You're not channel operator",
    ":bob!u@chat TOPIC #dev :free for all",
  ]);
  alice.take();
  await alice.type("MODE #dev +t", "MODE #dev");
  deepEqual(alice.take(), [":alice!u@chat MODE #dev +t", ":chat.server 324 alice #dev +nt"]);
  await bob.type("TOPIC #dev :mine", "KICK #dev alice");
  deepEqual(bob.take(), [
    ":chat.server 482 bob #dev :You're not channel operator",
    ":chat.server 482 bob #dev :You're not channel operator",
  ]);
  await alice.type("TOPIC #dev :set by the op", "KICK #dev carol", "KICK #dev bob :be nice");
  deepEqual(alice.take(), [
    ":alice!u@chat TOPIC #dev :set by the op",
    ":chat.server 441 alice carol #dev :They aren't on that channel",
    ":alice!u@chat KICK #dev bob :be nice",
  ]);
  deepEqual(bob.take(), [
    ":alice!u@chat TOPIC #dev :set by the op",
    ":alice!u@chat KICK #dev bob :be nice",
  ]);
  await bob.type("PRIVMSG #dev :still here?");
  deepEqual(bob.take().map((line) => line.split(" ").slice(1, 4).join(" ")), ["404 bob #dev"]);

  // Back in, bob is no operator; alice leaving leaves the room without one.
  await bob.type("JOIN #dev");
  await alice.type("PART #dev");
  bob.take();
  await bob.type("NAMES #dev", "MODE #dev -t");
  deepEqual(bob.take().slice(0, 1), [":chat.server 353 bob = #dev :bob"]);
});

Deno.test("room operators have the same powers from the library, and the server's too", async () => {
  const identity = await createIdentity();
  await using server = await serve({
    ...unthrottled,
    ircPort: 0,
    operators: [identity.fingerprint],
  });
  const { port } = server.addr;
  await using maker = await connect({ port, name: "maker" });
  await using other = await connect({ port, name: "other" });
  await using ana = await ircClient(server.ircAddr!.port, "ana");
  equal((await maker.join("#new")).ops.join(), "maker");
  deepEqual((await other.join("#new")).ops, ["maker"]);
  await ana.write("JOIN #new\r\n");
  await expect(ana, /^:chat\.server 353 ana = #new :ana @maker other$/);
  await using nc = await RawPeer.connect(port);
  await nc.write("ned\n/join #new\n");
  await expect(ana, /^:ned!u@chat JOIN #new$/);
  deepEqual((await other.roster({ room: "#new" })).ops, ["maker"]);
  await nc.write("/who\n");
  await expect(nc, /In #new: .*@maker, ned, other/);

  await rejects(other.lockTopic("#new", true), /Only the operators of "#new"/);
  equal(await maker.lockTopic("#new", true), true);
  await rejects(other.topic("#new", "no"), /Only the operators of "#new" can set its topic/);
  await rejects(other.kick("ana", "out", { room: "#new" }), /Only the operators of "#new"/);
  await maker.kick("other", "out", { room: "#new" });
  const kicked = await other.next("leave", { timeout: 2000 });
  deepEqual(
    [kicked.room, kicked.name, kicked.reason, kicked.by, kicked.message],
    ["#new", "other", "kicked", "maker", "out"],
  );
  ok(!other.joined.includes("#new"), "the one removed is out of the room");
  await expect(ana, /^:maker!u@chat KICK #new other :out$/);
  await expect(nc, /<- other left #new \(kicked by maker: out\)$/);
  await nc.write("/kick #new ana not you\n");
  await expect(nc, /Only the operators of "#new" can remove people from it/);

  // A server operator is an operator of every room, shown so as they join.
  await using op = await connect({ port, name: "op", identity });
  await op.join("#new");
  await expect(ana, /^:op!u@chat JOIN #new$/);
  await expect(ana, /^:chat\.server MODE #new \+o op$/);
  await op.kick("maker", "enough", { room: "#new" });
  await expect(ana, /^:op!u@chat KICK #new maker :enough$/);
});

Deno.test("irc WHO with a mask lists who matches among those sharing a room", async () => {
  await using chat = await makeCore();
  const alice = await register(chat.core, "alice");
  const bob = await register(chat.core, "bob");
  await register(chat.core, "albert");
  await bob.type("AWAY :out");
  alice.take();
  await alice.type("WHO al*", "WHO ?ob", "WHO zz*");
  deepEqual(alice.take(), [
    ":chat.server 352 alice * u chat chat.server albert H :0 Real Name",
    ":chat.server 352 alice * u chat chat.server alice H :0 Real Name",
    ":chat.server 315 alice al* :End of WHO list",
    ":chat.server 352 alice * u chat chat.server bob G :0 Real Name",
    ":chat.server 315 alice ?ob :End of WHO list",
    ":chat.server 315 alice zz* :End of WHO list",
  ]);
  // A mask made to take exponential time with a backtracking matcher is answered at once.
  const hostile = `${"*a".repeat(200)}b`;
  await alice.type(`WHO ${hostile}`);
  deepEqual(alice.take(), [`:chat.server 315 alice ${hostile} :End of WHO list`]);
  // Someone who shares no room is not listed.
  await bob.type("PART #lobby");
  await alice.type("WHO *");
  ok(!alice.take().some((line) => line.includes(" bob ")));
});
