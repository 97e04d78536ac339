import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { connect, type ProtocolError, serve } from "../mod.ts";
import { checkName } from "../protocol/names.ts";
import { confusableKey, skeleton } from "../_server/skeleton.ts";
import { createIdentity } from "../_common/identity.ts";
import { Proxy } from "./_proxy.ts";
import { RawPeer } from "./_raw.ts";
import { local } from "./_helpers.ts";

Deno.test("names with invisible characters are refused", async (t) => {
  const cases: [string, string][] = [
    ["小明\uFE00", "FE00"],
    ["小明\u{E0100}", "E0100"],
    ["小明\u180B", "180B"],
    ["José\uFE01", "FE01"],
    ["José\u180B", "180B"],
    ["a\u034Fb", "034F"],
    ["a\u{E0041}", "E0041"],
    ["\u3164a", "3164"],
    ["ab\u115F", "115F"],
  ];
  for (const [name, code] of cases) {
    await t.step(JSON.stringify(name), () => {
      const checked = checkName(name);
      ok(!checked.ok, `${JSON.stringify(name)} was accepted`);
      ok(checked.message.includes(`U+${code}`), checked.message);
    });
  }
  await t.step("visible names still pass", () => {
    for (const name of ["小明", "José", "ana-1.b_c", "Zoë", "नमस्ते"]) {
      deepEqual(checkName(name), { ok: true, name: name.normalize("NFC") });
    }
  });
});

Deno.test("the server refuses an invisible twin of a name", async () => {
  await using server = await serve(local);
  const { port } = server.addr;
  await using ming = await connect({ port, name: "小明" });
  for (const twin of ["小明\uFE00", "小明\u{E0100}", "小明\u180B"]) {
    await rejects(
      () => connect({ port, name: twin }),
      (e: ProtocolError) => e.code === "invalid_name" && /invisible/.test(e.message),
    );
  }
  await rejects(
    () => ming.nick("小明\uFE00"),
    (e: ProtocolError) => e.code === "invalid_name",
  );
});

Deno.test("the skeleton follows Unicode TR39: NFD, prototypes, NFD", () => {
  equal(skeleton("pаypal"), "paypal"); // Cyrillic а
  equal(skeleton("ℌello"), skeleton("Hello"));
  equal(skeleton("José"), skeleton("Jose\u0301"));
  equal(skeleton("m"), skeleton("rn"));
  equal(confusableKey("B0B"), confusableKey("bob"));
  equal(confusableKey("aIice"), confusableKey("alice"));
  ok(confusableKey("alice") !== confusableKey("alicia"));
  ok(confusableKey("小明") !== confusableKey("小红"));
});

Deno.test("a name that looks like one online or held is taken", async () => {
  await using server = await serve({ ...local, resumeGrace: 60_000 });
  const { port } = server.addr;
  await using alice = await connect({ port, name: "alice" });
  for (const lookalike of ["аlice", "aIice", "ɑlicе"]) {
    await rejects(
      () => connect({ port, name: lookalike }),
      (e: ProtocolError) => e.code === "name_taken" && /looks like "alice"/.test(e.message),
      lookalike,
    );
  }
  await using bob = await connect({ port, name: "bob" });
  await rejects(
    () => bob.nick("аlice"),
    (e: ProtocolError) => e.code === "name_taken" && /looks like/.test(e.message),
  );
  // Someone may switch to a look-alike of their own name.
  equal(await alice.nick("aIice"), "aIice");
  equal(await alice.nick("alice"), "alice");

  // Held for a reconnect: still taken.
  await using proxy = new Proxy(port);
  const carol = await connect({
    port: proxy.port,
    name: "carol",
    reconnect: { minDelay: 60_000, maxDelay: 60_000 },
  });
  try {
    proxy.refusing = true;
    await proxy.cut();
    await carol.next("reconnecting", { timeout: 5000 });
    await rejects(
      () => connect({ port, name: "cаrol" }),
      (e: ProtocolError) => e.code === "name_taken" && /looks like "carol"/.test(e.message),
    );
  } finally {
    await carol.close({ timeout: 100 }).catch(() => {});
  }
});

Deno.test("a name that looks like one bound to a key belongs to that key", async () => {
  const owner = await createIdentity();
  const other = await createIdentity();
  await using server = await serve(local);
  const { port } = server.addr;
  {
    await using first = await connect({ port, name: "paypal", identity: owner });
    equal(first.name, "paypal");
  }
  await rejects(
    () => connect({ port, name: "pаypal" }),
    (e: ProtocolError) =>
      e.code === "name_claimed" && /looks like "paypal"/.test(e.message) &&
      e.message.includes(owner.fingerprint),
  );
  await rejects(
    () => connect({ port, name: "pаypal", identity: other }),
    (e: ProtocolError) => e.code === "name_claimed",
  );
  // The owner may use a look-alike of its own name.
  await using again = await connect({ port, name: "pаypal", identity: owner });
  equal(again.name, "pаypal");
});

Deno.test("a key's owner takes over the session held for it at once", async () => {
  const identity = await createIdentity();
  // The key proof names the port the client dialed: the proxy's, which the server is told of.
  await using proxy = new Proxy(0);
  await using server = await serve({ ...local, resumeGrace: 60_000, publicPorts: [proxy.port] });
  const { port } = server.addr;
  proxy.target = port;
  await using bob = await connect({ port, name: "bob", history: 0 });
  const ghost = await connect({
    port: proxy.port,
    name: "ghost",
    identity,
    reconnect: { minDelay: 60_000, maxDelay: 60_000 },
  });
  await ghost.join("#dev");
  await bob.join("#dev");
  const oldToken = ghost.session;
  // Everything bob heard so far is behind this message.
  await ghost.send("before", { room: "#dev" });
  equal((await bob.next("message", { timeout: 5000 })).text, "before");
  try {
    proxy.refusing = true;
    await proxy.cut();
    await ghost.next("reconnecting", { timeout: 5000 });
    await bob.dm("ghost", "held for you");

    // Without the key: still held.
    await rejects(
      () => connect({ port, name: "ghost" }),
      (e: ProtocolError) => e.code === "name_claimed" || e.code === "name_taken",
    );
    // With the key: in at once, with the rooms and the private messages held.
    await using back = await connect({ port, name: "ghost", identity, history: 0 });
    equal(back.name, "ghost");
    deepEqual([...back.joined].sort(), ["#dev", "#lobby"]);
    equal((await back.next("dm", { timeout: 5000 })).text, "held for you");
    await back.send("back", { room: "#dev" });
    // Bob saw no leave and no join: the next thing he hears is the message.
    const seen = await bob.next(undefined, { timeout: 5000 });
    deepEqual(seen.type === "message" ? [seen.from, seen.text] : seen, ["ghost", "back"]);

    // The old resume token no longer works.
    await using raw = await RawPeer.connect(port);
    await raw.send({ type: "hello", id: 1, v: 1, name: "guest", resume: oldToken });
    const welcome = await raw.frame("welcome");
    deepEqual([welcome.name, welcome.resumed], ["guest", false]);
  } finally {
    await ghost.close({ timeout: 100 }).catch(() => {});
  }
});
