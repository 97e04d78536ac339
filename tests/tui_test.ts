import { deepEqual, match, ok, rejects } from "node:assert/strict";
import { connect, serve } from "../mod.ts";
import { HAS_TMUX, shellQuote, TmuxSession } from "./_tmux.ts";
import { HOME } from "./_cli.ts";
import { local } from "./_helpers.ts";

const root = new URL("..", import.meta.url).pathname;
const homes = `XDG_CONFIG_HOME=${HOME}/config XDG_DATA_HOME=${HOME}/data`;

/** Shows every join and leave, even of people who have not spoken (the smart filter hides them). */
async function showEveryJoin(pane: TmuxSession): Promise<void> {
  await pane.type("/set smart_filter off");
  await pane.press("Enter");
  await pane.waitFor(/Every join, leave and rename\s+is shown/);
}

/** `chat connect` to a port, as a shell command, run the way `deno task chat` runs it. */
function chatConnect(port: number): string {
  return [
    Deno.execPath(),
    "run",
    "-q",
    "-P=chat",
    "--no-prompt",
    "main.ts",
    "connect",
    `127.0.0.1:${port}`,
  ]
    .map(shellQuote).join(" ");
}

Deno.test({
  name:
    "interactive client keeps a half-typed line intact while messages arrive, and restores the terminal",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = await serve(local);
    const port = server.addr.port;
    const dir = await Deno.makeTempDir();
    try {
      const chat = chatConnect(port);
      // The modes are written before EXIT= shows, so waiting for EXIT= waits for them.
      const script = `cd ${shellQuote(root)}; ${homes} ${chat} --name alice --no-color; ` +
        `code=$?; stty -a > ${dir}/modes; echo "EXIT=$code"; exec sleep 60`;
      await using pane = await TmuxSession.start(`sh -c ${shellQuote(script)}`, {
        columns: 60,
        rows: 16,
      });
      await pane.waitFor(/#lobby>/);
      await showEveryJoin(pane);
      await using bob = await connect({ port, name: "bob" });
      await pane.waitFor(/bob joined/);

      // Type slowly while bob talks.
      const typed = "你好, bob! 👨‍👩‍👧 e\u0301 typing";
      const incoming = [
        "first from bob",
        "第二条消息 with 中文",
        "a long message that has to wrap because it is far wider than sixty columns of this pane",
      ];
      const graphemes = [...new Intl.Segmenter().segment(typed)].map((part) => part.segment);
      for (let i = 0; i < graphemes.length; i++) {
        await pane.type(graphemes[i]!);
        if (i % 6 === 0 && incoming.length > 0) {
          const text = incoming.shift()!;
          await bob.send(text);
        }
      }
      const screen = await pane.waitFor(new RegExp(`far wider[\\s\\S]*#lobby> ${typed}`));
      const joined = screen.join("\n");
      match(joined, /<bob> first from bob/);
      match(joined, /<bob> 第二条消息 with 中文/);
      match(joined, /<bob> a long message that has to wrap/);
      ok(
        screen.some((row) => /^\s+.*sixty columns of this pane/.test(row)),
        "the long message wraps under itself",
      );
      deepEqual(screen.filter((row) => row.startsWith("#lobby> ")), [`#lobby> ${typed}`]);

      // Edit in the middle: Home, then past the two wide characters, then insert.
      await pane.press("Home", "Right", "Right");
      await pane.type("X");
      await pane.waitFor(/#lobby> 你好X, bob!/);
      await pane.press("Enter");
      const message = await bob.next("message", { timeout: 5000 });
      deepEqual([message.from, message.text], ["alice", "你好X, bob! 👨‍👩‍👧 e\u0301 typing"]);

      await pane.type("/quit");
      await pane.press("Enter");
      await pane.waitFor(/EXIT=0/);
      const leave = await bob.next("leave", { timeout: 5000 });
      deepEqual([leave.name, leave.reason], ["alice", "quit"]);
      // Raw mode is off again: the line discipline and echo are back.
      const modes = await Deno.readTextFile(`${dir}/modes`);
      match(modes, /(^|\s)icanon(\s|$)/m);
      match(modes, /(^|\s)echo(\s|$)/m);
      match(modes, /(^|\s)isig(\s|$)/m);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "interactive client leaves on Ctrl-C through the exit handshake and restores the terminal",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = await serve(local);
    const port = server.addr.port;
    await using bob = await connect({ port, name: "bob" });
    const chat = chatConnect(port);
    const script = `cd ${
      shellQuote(root)
    }; ${homes} ${chat} --name carol; echo "EXIT=$?"; stty -a; exec sleep 60`;
    await using pane = await TmuxSession.start(`sh -c ${shellQuote(script)}`, {
      columns: 100,
      rows: 30,
    });
    await pane.waitFor(/#lobby>/);
    await pane.type("half typed");
    await pane.press("C-c");
    const screen = (await pane.waitFor(/EXIT=0[\s\S]*icanon/)).join("\n");
    match(screen, / icanon/);
    match(screen, / echo/);
    const leave = await bob.next("leave", { timeout: 5000 });
    deepEqual([leave.name, leave.reason], ["carol", "quit"]);
  },
});

/** Starts `chat connect` in a pane, echoing its exit code when it ends. */
async function startChat(
  port: number,
  name: string,
  size: { columns: number; rows: number },
  extra = "",
): Promise<TmuxSession> {
  const script = `cd ${shellQuote(root)}; ${homes} ${
    chatConnect(port)
  } --name ${name} --no-color ${extra}; echo "EXIT=$?"; exec sleep 60`;
  return await TmuxSession.start(`sh -c ${shellQuote(script)}`, size);
}

/** A pattern for text that may be wrapped anywhere across rows (with their indent). */
function acrossRows(text: string): RegExp {
  const parts = [...new Intl.Segmenter().segment(text.replace(/\s+/g, ""))].map((part) =>
    part.segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
  );
  return new RegExp(parts.join("\\s*"));
}

/**
 * The rows between the top of the screen and the status bar. (capture-pane leaves out the
 * spaces at the end of a row, so patterns end rows with `$` where a space was typed.)
 */
function logOf(screen: string[]): string {
  return screen.slice(0, statusRow(screen)).join("\n");
}

/** The index of the status bar's row. */
function statusRow(screen: string[]): number {
  return screen.findLastIndex((row) => /^ \[\d+:/.test(row));
}

Deno.test({
  name: "interactive client wraps Chinese and Latin text at 34 and 30 columns without losing any",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = await serve(local);
    const port = server.addr.port;
    await using pane = await startChat(port, "alice", { columns: 34, rows: 24 });
    await pane.waitFor(/#lobby>/);
    await showEveryJoin(pane);
    await using bob = await connect({ port, name: "bob" });
    await pane.waitFor(/bob joined/);
    const texts = [
      "这是一条很长的消息，需要换行显示在屏幕上",
      "hi from bob, a line in plain Latin letters",
    ];
    for (const text of texts) await bob.send(text);
    await bob.send("hi from the lobby, long enough to wrap twice at thirty columns");
    const all = [...texts, "hi from the lobby, long enough to wrap twice at thirty columns"];
    const patterns = all.map(acrossRows);
    const seen34 = await pane.waitFor(/thirty\s+columns/);
    for (const pattern of patterns) match(logOf(seen34), pattern);
    ok(seen34.every((row) => row.length <= 34));

    await pane.resize(30, 24);
    // Redrawn at the new width: every text whole again.
    const seen30 = await pane.waitFor(
      new RegExp(patterns.map((pattern) => `(?=[\\s\\S]*${pattern.source})`).join("")),
    );
    for (const pattern of patterns) match(logOf(seen30), pattern);
    await pane.press("C-c");
    await pane.waitFor(/EXIT=0/);
  },
});

Deno.test({
  name:
    "interactive client names the room and reason of leaves, and shows no room after leaving the last",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = await serve(local);
    const port = server.addr.port;
    await using pane = await startChat(port, "alice", { columns: 80, rows: 24 });
    await pane.waitFor(/#lobby>/);
    await showEveryJoin(pane);
    await using bob = await connect({ port, name: "bob" });
    await pane.waitFor(/bob joined #lobby/);
    await pane.type("/join #dev");
    await pane.press("Enter");
    await pane.waitFor(/^#dev>$/m);
    await bob.join("#dev");
    await pane.waitFor(/bob joined #dev/);
    await bob.leave("#dev");
    await pane.waitFor(/← bob left #dev \(left the room\)/);
    await bob.close();
    // In the window of #lobby, which is window 1.
    await pane.press("M-1");
    await pane.waitFor(/← bob left #lobby \(quit\)/);
    await pane.press("M-2");
    await pane.waitFor(/^#dev>$/m);

    await pane.type("/leave");
    await pane.press("Enter");
    await pane.waitFor(/You left #dev/);
    await pane.waitFor(/^#lobby>$/m);
    await pane.type("/leave");
    await pane.press("Enter");
    await pane.waitFor(/You left #lobby/);
    const screen = await pane.waitFor(/^>$/m);
    const status = screen[statusRow(screen)]!;
    match(status, /in no room/);
    ok(!/#lobby|#dev/.test(status), status);
    // A message has nowhere to go: it is kept for after a /join.
    await pane.type("still here");
    await pane.press("Enter");
    await pane.waitFor(/you are in no room/);
    await pane.waitFor(/^> still here$/m);
    await pane.press("C-u");
    await pane.type("/join #lobby");
    await pane.press("Enter");
    await pane.waitFor(/^#lobby>$/m);
    await pane.press("C-c");
    await pane.waitFor(/EXIT=0/);
  },
});

Deno.test({
  name: "interactive client keeps a refused message in the input and still exits 0 on /quit",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = await serve({ ...local, maxTextLength: 10 });
    const port = server.addr.port;
    await using pane = await startChat(port, "alice", { columns: 80, rows: 24 });
    await pane.waitFor(/#lobby>/);
    await pane.type("this line is too long");
    await pane.press("Enter");
    await pane.waitFor(/Not sent: Message is longer than 10 characters/);
    await pane.waitFor(/^#lobby> this line is too long$/m);
    await pane.press("C-u");
    await pane.type("/quit");
    await pane.press("Enter");
    await pane.waitFor(/EXIT=0/);
  },
});

Deno.test({
  name:
    "interactive client completes names from every room it shares, never its old name, and offer ids",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = await serve(local);
    const port = server.addr.port;
    await using bob = await connect({ port, name: "bob" });
    await using carol = await connect({ port, name: "carol" });
    await carol.join("#dev");
    await carol.leave("#lobby");
    await using pane = await startChat(port, "alice", { columns: 100, rows: 24 });
    await pane.waitFor(/#lobby>/);
    await pane.type("/join #dev");
    await pane.press("Enter");
    await pane.waitFor(/^#dev>$/m);
    // bob is only in #lobby, carol only in #dev.
    await pane.type("bo");
    await pane.press("Tab");
    await pane.waitFor(/^#dev> bob:$/m);
    await pane.press("C-u");
    await pane.type("/room #lobby");
    await pane.press("Enter");
    await pane.waitFor(/^#lobby>$/m);
    await pane.type("hi ca");
    await pane.press("Tab");
    await pane.waitFor(/^#lobby> hi carol$/m);
    await pane.press("C-u");

    await pane.type("/nick alicia");
    await pane.press("Enter");
    await pane.waitFor(/You are now known as alicia/);
    await pane.type("ali");
    await pane.press("Tab");
    await pane.type("|");
    await pane.waitFor(/^#lobby> ali\|$/m);
    await pane.press("C-u");

    const offered = Promise.withResolvers<string>();
    const sending = bob.sendFile("alicia", new TextEncoder().encode("hello"), {
      name: "hello.txt",
      onOffer: (id) => offered.resolve(id),
    });
    sending.catch(() => {});
    const id = await offered.promise;
    await pane.waitFor(/offers "hello.txt"/);
    await pane.type("/decline ");
    await pane.press("Tab");
    await pane.waitFor(new RegExp(`^#lobby> /decline ${id.slice(0, 6)}$`, "m"));
    await pane.press("Enter");
    await pane.waitFor(/Declined "hello.txt"/);
    await rejects(sending, /declined/);
    await pane.press("C-c");
    await pane.waitFor(/EXIT=0/);
  },
});

Deno.test({
  name: "interactive client says once that a file was declined",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = await serve(local);
    const port = server.addr.port;
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/notes.txt`, "some notes");
      await using bob = await connect({ port, name: "bob" });
      await using pane = await startChat(port, "alice", { columns: 100, rows: 24 });
      await pane.waitFor(/#lobby>/);
      await pane.type(`/send bob ${dir}/notes.txt`);
      await pane.press("Enter");
      const offer = await bob.next("offer", { timeout: 5000 });
      await offer.decline();
      await pane.waitFor(/declined/);
      // Something that comes after: by then every line about the decline is on the screen.
      await bob.send("after the decline");
      const screen = await pane.waitFor(/<bob> after the decline/);
      deepEqual(screen.filter((row) => /declined/.test(row)).length, 1, screen.join("\n"));
      await pane.press("C-c");
      await pane.waitFor(/EXIT=0/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
