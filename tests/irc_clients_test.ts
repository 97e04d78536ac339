/**
 * Real IRC clients on the IRC door: WeeChat (headless, driven through its
 * FIFO) and irssi (in a real terminal, through tmux), each chatting with a
 * library client in Chinese and English. A client that is not installed is
 * skipped.
 */

import { deepEqual, equal } from "node:assert/strict";
import { type ChatClient, type ChatEvent, connect, serve } from "../mod.ts";
import { withTempDir } from "./_helpers.ts";
import { HAS_TMUX, shellQuote, TmuxSession } from "./_tmux.ts";

function installed(program: string): boolean {
  if (Deno.build.os === "windows") return false;
  try {
    return new Deno.Command("sh", {
      args: ["-c", `command -v ${program}`],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
}

const HAS_WEECHAT = installed("weechat-headless");
const HAS_IRSSI = HAS_TMUX && installed("irssi");

/** Waits for the library client's next event of a type that passes the check. */
async function seen<T extends "message" | "dm" | "join" | "leave" | "topic" | "nick">(
  client: ChatClient,
  type: T,
  check: (event: Extract<ChatEvent, { type: T }>) => boolean,
): Promise<Extract<ChatEvent, { type: T }>> {
  while (true) {
    const event = await client.next(type, { timeout: 15_000 });
    if (check(event)) return event;
  }
}

/** Reads WeeChat's logs until one holds the text (WeeChat writes them at once with flush_delay 0). */
async function logged(dir: string, text: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    for await (const entry of Deno.readDir(`${dir}/logs`)) {
      const content = await Deno.readTextFile(`${dir}/logs/${entry.name}`).catch(() => "");
      if (content.includes(text)) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`WeeChat never showed "${text}"`);
}

Deno.test({
  name: HAS_WEECHAT
    ? "weechat chats with a library client in Chinese and English"
    : "weechat chats with a library client (skipped: weechat-headless is not installed)",
  ignore: !HAS_WEECHAT,
  fn: () =>
    withTempDir(async (dir) => {
      await using server = await serve({ hostname: "127.0.0.1", port: 0, ircPort: 0 });
      await using lib = await connect({ port: server.addr.port, name: "小明" });
      const fifo = `${dir}/fifo`;
      const weechat = new Deno.Command("weechat-headless", {
        args: [
          "--dir",
          dir,
          "--run-command",
          [
            "/set logger.file.flush_delay 0",
            `/set fifo.file.path ${fifo}`,
            `/server add chat 127.0.0.1/${server.ircAddr!.port}`,
            "/set irc.server.chat.nicks wee",
            "/set irc.server.chat.username wee",
            // No client-side flood delay: the server's own limits apply.
            "/set irc.server.chat.anti_flood_prio_high 0",
            "/set irc.server.chat.anti_flood_prio_low 0",
            "/connect chat",
          ].join(";"),
        ],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      try {
        await seen(lib, "join", (event) => event.name === "wee");
        // The server has welcomed WeeChat; WeeChat has its channel buffer once it logs the join.
        await logged(dir, "has joined #lobby");
        const command = (buffer: string, text: string) =>
          Deno.writeTextFile(fifo, `${buffer} *${text}\n`, { append: true });

        await command("irc.chat.#lobby", "hello from weechat");
        await seen(lib, "message", (event) => event.text === "hello from weechat");
        await command("irc.chat.#lobby", "你好，世界");
        await seen(lib, "message", (event) => event.text === "你好，世界");
        await command("irc.chat.#lobby", "/me waves");
        const action = await seen(lib, "message", (event) => event.action === true);
        deepEqual([action.from, action.text], ["wee", "waves"]);
        await command("irc.server.chat", "/msg _|bhto6u 私聊 hello");
        equal((await seen(lib, "dm", () => true)).text, "私聊 hello");
        await command("irc.chat.#lobby", "/topic 新话题 topic");
        equal((await seen(lib, "topic", () => true)).topic, "新话题 topic");

        await lib.send("你好 wee, from the library");
        await logged(dir, "你好 wee, from the library");
        await lib.dm("wee", "a private 消息");
        await logged(dir, "a private 消息");

        await command("irc.chat.#lobby", "/part");
        await seen(lib, "leave", (event) => event.name === "wee" && event.reason === "part");
        await command("irc.server.chat", "/join #lobby");
        await seen(lib, "join", (event) => event.name === "wee");
        await command("irc.server.chat", "/quit bye");
        await seen(lib, "leave", (event) => event.name === "wee" && event.reason === "quit");
      } finally {
        weechat.kill("SIGKILL");
        await weechat.status;
      }
    }),
});

Deno.test({
  name: HAS_IRSSI
    ? "irssi chats with a library client in Chinese and English"
    : "irssi chats with a library client (skipped: irssi or tmux is not installed)",
  ignore: !HAS_IRSSI,
  fn: () =>
    withTempDir(async (dir) => {
      await using server = await serve({ hostname: "127.0.0.1", port: 0, ircPort: 0 });
      await using lib = await connect({ port: server.addr.port, name: "小明" });
      // No client-side flood delay: the server's own limits apply.
      await Deno.writeTextFile(
        `${dir}/config`,
        'settings = { "irc/core" = { cmd_queue_speed = "0msec"; cmds_max_at_once = "100"; }; };\n',
      );
      const script = `LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=xterm-256color exec irssi --home=${
        shellQuote(dir)
      } -n ircy -c 127.0.0.1 -p ${server.ircAddr!.port}`;
      await using pane = await TmuxSession.start(`sh -c ${shellQuote(script)}`, {
        columns: 120,
        rows: 40,
      });
      await seen(lib, "join", (event) => event.name === "ircy");
      const type = async (line: string) => {
        await pane.type(line);
        await pane.press("Enter");
      };
      // The server has welcomed irssi; irssi has a window for #lobby once it has read the JOIN.
      for (let attempt = 1;; attempt++) {
        await type("/window goto #lobby");
        try {
          await pane.waitFor(/has joined #lobby/, 1000);
          break;
        } catch (error) {
          if (attempt === 15) throw error;
        }
      }
      await type("hello from irssi");
      await seen(lib, "message", (event) => event.text === "hello from irssi");
      await type("你好，来自 irssi");
      await seen(lib, "message", (event) => event.text === "你好，来自 irssi");
      await type("/me waves");
      const action = await seen(lib, "message", (event) => event.action === true);
      deepEqual([action.from, action.text], ["ircy", "waves"]);
      await type("/msg _|bhto6u 私聊 from irssi");
      equal((await seen(lib, "dm", () => true)).text, "私聊 from irssi");
      await type("/window goto #lobby");
      await type("/topic 话题 from irssi");
      equal((await seen(lib, "topic", () => true)).topic, "话题 from irssi");

      await lib.send("library says 你好");
      await pane.waitFor(/library says 你好/, 15_000);
      await lib.dm("ircy", "a private 你好 for irssi");
      await type("/window goto _|bhto6u");
      await pane.waitFor(/a private 你好 for irssi/, 15_000);

      await lib.join("#dev");
      await type("/join #dev");
      await seen(lib, "join", (event) => event.name === "ircy" && event.room === "#dev");
      await type("/part #lobby");
      await seen(lib, "leave", (event) => event.name === "ircy" && event.reason === "part");
      await type("/quit see you");
      await seen(lib, "leave", (event) => event.name === "ircy" && event.reason === "quit");
    }),
});
