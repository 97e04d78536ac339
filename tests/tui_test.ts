import { deepEqual, match, ok } from "node:assert/strict";
import { connect, serve } from "../mod.ts";
import { HAS_TMUX, TmuxSession } from "./_tmux.ts";
import { HOME } from "./_cli.ts";

const root = new URL("..", import.meta.url).pathname;
const homes = `XDG_CONFIG_HOME=${HOME}/config XDG_DATA_HOME=${HOME}/data`;

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

function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

Deno.test({
  name:
    "interactive client keeps a half-typed line intact while messages arrive, and restores the terminal",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = await serve({ hostname: "127.0.0.1", port: 0 });
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
    await using server = await serve({ hostname: "127.0.0.1", port: 0 });
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
