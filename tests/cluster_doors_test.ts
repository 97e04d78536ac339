/**
 * Every door on every node: a WebSocket user on one node, an IRC user and a
 * library user on another, sharing a real PostgreSQL, talk in one room and
 * in private, and see each other come and go.
 *
 * @module
 */

import { deepEqual, equal } from "node:assert/strict";
import { connect, serve } from "../mod.ts";
import { unthrottled } from "./_helpers.ts";
import { PG_BIN, PG_MISSING, startPostgres } from "./_postgres.ts";
import { RawPeer } from "./_raw.ts";
import { WsPeer } from "./_websocket.ts";

/** Reads IRC lines until one matches; closes the connection (so the test fails) after 20 s. */
async function expect(peer: RawPeer, pattern: RegExp): Promise<string> {
  const timer = setTimeout(() => peer.close(), 20_000);
  try {
    return await peer.until(pattern);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test({
  name: `WebSocket, IRC and library users on different nodes talk together${PG_MISSING}`,
  ignore: PG_BIN === undefined,
  async fn() {
    await using pg = await startPostgres();
    const url = await pg.database("doors");
    const options = { ...unthrottled, data: url, historyOnJoin: 0 };
    await using a = await serve({ ...options, webPort: 0 });
    await using b = await serve({ ...options, ircPort: 0 });

    // wes on node a over a WebSocket; ira (IRC) and lib (the library) on node b.
    await using wes = await WsPeer.join(a.webAddr!.port, "wes");
    await using ira = await RawPeer.connect(b.ircAddr!.port);
    await ira.write("NICK ira\r\nUSER ira 0 * :Ira\r\n");
    await expect(ira, / 366 /);
    await wes.until((f) => f.type === "join" && f.name === "ira", 20_000);
    await using lib = await connect({ port: b.addr.port, name: "lib", history: 0 });
    await wes.until((f) => f.type === "join" && f.name === "lib", 20_000);
    await expect(ira, /^:lib!u@chat JOIN #lobby$/);

    // Everyone joins #dev and sees the others arrive.
    wes.send({ type: "join", id: 2, room: "#dev" });
    await wes.until((f) => f.type === "ack" && f.id === 2);
    await ira.write("JOIN #dev\r\n");
    await expect(ira, /^:ira!u@chat JOIN #dev$/);
    await wes.until((f) => f.type === "join" && f.room === "#dev" && f.name === "ira", 20_000);
    await lib.join("#dev");
    await expect(ira, /^:lib!u@chat JOIN #dev$/);
    await wes.until((f) => f.type === "join" && f.room === "#dev" && f.name === "lib", 20_000);
    // A word from wes reaching lib shows node b has heard all that node a told before it.
    wes.send({ type: "dm", id: 7, to: "lib", text: "sync" });
    equal((await lib.next("dm", { timeout: 20_000 })).text, "sync");
    deepEqual((await lib.who({ room: "#dev" })).sort(), ["ira", "lib", "wes"]);

    // Room messages from each door reach the two others.
    wes.send({ type: "send", id: 3, room: "#dev", text: "hello from the web" });
    await expect(ira, /^:wes!u@chat PRIVMSG #dev :hello from the web$/);
    equal((await lib.next("message", { timeout: 20_000 })).text, "hello from the web");
    await ira.write("PRIVMSG #dev :hello from irc\r\n");
    await wes.until((f) => f.type === "message" && f.text === "hello from irc", 20_000);
    equal((await lib.next("message", { timeout: 20_000 })).text, "hello from irc");
    await lib.send("hello from the library", { room: "#dev" });
    await wes.until((f) => f.type === "message" && f.text === "hello from the library", 20_000);
    await expect(ira, /^:lib!u@chat PRIVMSG #dev :hello from the library$/);

    // Private messages across the nodes, each way.
    await ira.write("PRIVMSG wes :psst from irc\r\n");
    const fromIra = await wes.until((f) => f.type === "dm" && f.from === "ira", 20_000);
    equal(fromIra.text, "psst from irc");
    wes.send({ type: "dm", id: 4, to: "ira", text: "psst from the web" });
    await expect(ira, /^:wes!u@chat PRIVMSG ira :psst from the web$/);
    await lib.dm("wes", "psst from the library");
    await wes.until((f) => f.type === "dm" && f.text === "psst from the library", 20_000);
    wes.send({ type: "dm", id: 5, to: "lib", text: "back to the library" });
    equal((await lib.next("dm", { timeout: 20_000 })).text, "back to the library");

    // Leaves and quits.
    await ira.write("PART #dev\r\n");
    const left = await wes.until(
      (f) => f.type === "leave" && f.room === "#dev" && f.name === "ira",
      20_000,
    );
    equal(left.reason, "part");
    const iraLeft = await lib.next("leave", { timeout: 20_000 });
    deepEqual([iraLeft.name, iraLeft.room], ["ira", "#dev"]);
    wes.send({ type: "quit", id: 6 });
    await expect(ira, /^:wes!u@chat QUIT :Quit$/);
    const quit = await lib.next("leave", { timeout: 20_000 });
    deepEqual([quit.name, quit.reason], ["wes", "quit"]);
  },
});

Deno.test({
  name:
    `an IRC user sees a notice, away change, operator and kick from another node as IRC does${PG_MISSING}`,
  ignore: PG_BIN === undefined,
  async fn() {
    await using pg = await startPostgres();
    const url = await pg.database("irc_room");
    const options = { ...unthrottled, data: url, historyOnJoin: 0 };
    await using a = await serve(options);
    await using b = await serve({ ...options, ircPort: 0 });
    await using ann = await connect({ port: a.addr.port, name: "ann", history: 0 });
    const iraJoins = ann.next("join", { timeout: 20_000 });
    await using ira = await RawPeer.connect(b.ircAddr!.port);
    await ira.write("CAP LS 302\r\nCAP REQ :away-notify\r\nNICK ira\r\nUSER ira 0 * :Ira\r\n");
    await ira.write("CAP END\r\n");
    await expect(ira, / 366 /);
    equal((await iraJoins).name, "ira");
    // ann creates #ops on node a; a word from her shows node b has heard of it.
    await ann.join("#ops");
    await ann.dm("ira", "come to #ops");
    await expect(ira, /^:ann!u@chat PRIVMSG ira :come to #ops$/);
    const iraInOps = ann.next("join", { timeout: 20_000 });
    await ira.write("JOIN #ops\r\n");
    await expect(ira, /^:chat\.server 353 ira = #ops :@ann ira$/);
    deepEqual([(await iraInOps).name, (await iraInOps).room], ["ira", "#ops"]);
    await ann.send("build passed", { room: "#ops", notice: true });
    await expect(ira, /^:ann!u@chat NOTICE #ops :build passed$/);
    await ann.away("lunch");
    await expect(ira, /^:ann!u@chat AWAY :lunch$/);
    await ann.kick("ira", "off topic", { room: "#ops" });
    await expect(ira, /^:ann!u@chat KICK #ops ira :off topic$/);
  },
});
