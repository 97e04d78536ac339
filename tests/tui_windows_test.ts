import { deepEqual, equal, match, ok } from "node:assert/strict";
import { connect, serve } from "../mod.ts";
import { HAS_TMUX, shellQuote, TmuxSession } from "./_tmux.ts";
import { HOME } from "./_cli.ts";
import { local } from "./_helpers.ts";
import { displayWidth } from "../tui/width.ts";

const root = new URL("..", import.meta.url).pathname;
const homes = `XDG_CONFIG_HOME=${HOME}/config XDG_DATA_HOME=${HOME}/data`;

/** Starts `chat connect` in a pane, the way `deno task chat` runs it. */
async function startChat(
  port: number,
  name: string,
  size: { columns: number; rows: number },
  extra = "",
  env = homes,
): Promise<TmuxSession> {
  const chat = [
    Deno.execPath(),
    "run",
    "-q",
    "-P=chat",
    "--no-prompt",
    "main.ts",
    "connect",
    `127.0.0.1:${port}`,
  ].map(shellQuote).join(" ");
  const script = `cd ${shellQuote(root)}; ${env} ${chat} --name ${name} --no-color ${extra}; ` +
    `echo "EXIT=$?"; exec sleep 60`;
  return await TmuxSession.start(`sh -c ${shellQuote(script)}`, size);
}

/** The status bar: the row that starts with the window shown, `[N:…]`. */
function statusOf(screen: string[]): string {
  return screen.findLast((row) => /^ \[\d+:/.test(row)) ?? "";
}

Deno.test({
  name:
    "interactive client keeps a window per room and conversation, switched with Alt-digits, Ctrl-N/P and Alt-arrows",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = await serve(local);
    const port = server.addr.port;
    await using bob = await connect({ port, name: "bob" });
    await using pane = await startChat(port, "alice", { columns: 100, rows: 24 });
    await pane.waitFor(/^#lobby>/m);
    await pane.type("/join #dev");
    await pane.press("Enter");
    await pane.waitFor(/^ \[2:#dev\]/m);

    // Activity elsewhere: new messages in #lobby, then a mention; a private message opens window 3.
    await bob.send("lobby news");
    await pane.waitFor(/^ \[2:#dev\] 1:#lobby\+ /m);
    await bob.send("are you there, alice?");
    await pane.waitFor(/^ \[2:#dev\] 1:#lobby! /m);
    await bob.dm("alice", "psst");
    let screen = await pane.waitFor(/^ \[2:#dev\] 1:#lobby! 3:bob! /m);
    ok(!/lobby news|psst/.test(screen.join("\n")), "other windows' lines stay in their windows");

    // Alt-1: #lobby, with the line where alice left it.
    await pane.press("M-1");
    screen = await pane.waitFor(/^ \[1:#lobby\] 3:bob! /m);
    match(screen.join("\n"), /new messages ─+\n.*<bob> lobby news\n.*<bob> are you there/);

    // The half-typed line stays with its window.
    await pane.type("draft for the lobby");
    await pane.press("C-n");
    await pane.waitFor(/^#dev>$/m);
    await pane.press("C-n");
    screen = await pane.waitFor(/^bob>$/m);
    match(screen.join("\n"), /<bob> psst/);
    match(statusOf(screen), /^ \[3:bob\] · alice @ \S+ · private/);
    await pane.type("secret");
    await pane.press("Enter");
    const dm = await bob.next("dm", { timeout: 5000 });
    deepEqual([dm.from, dm.text], ["alice", "secret"]);
    await pane.waitFor(/\[private → bob\] secret/);
    await pane.press("C-p");
    await pane.waitFor(/^#dev>$/m);
    await pane.press("C-p");
    await pane.waitFor(/^#lobby> draft for the lobby$/m);
    await pane.press("M-Right");
    await pane.waitFor(/^ \[2:#dev\]/m);
    await pane.press("M-Left");
    await pane.waitFor(/^ \[1:#lobby\]/m);
    await pane.press("C-u");

    // What is typed goes to the window's room.
    await pane.press("M-2");
    await pane.waitFor(/^#dev>$/m);
    await bob.join("#dev");
    await pane.type("for dev only");
    await pane.press("Enter");
    const message = await bob.next("message", { timeout: 5000 });
    deepEqual([message.room, message.text], ["#dev", "for dev only"]);

    // /window N, and /close: a private window closes, a room's window leaves the room.
    await pane.type("/window 3");
    await pane.press("Enter");
    await pane.waitFor(/^bob>$/m);
    await pane.type("/close");
    await pane.press("Enter");
    screen = await pane.waitFor(/^#dev>$/m);
    ok(!/3:bob/.test(statusOf(screen)), statusOf(screen));
    await pane.type("/window 3");
    await pane.press("Enter");
    await pane.waitFor(/There is no window 3/);
    await pane.type("/window");
    await pane.press("Enter");
    await pane.waitFor(/Windows: 1:#lobby 2:#dev$/m);
    await pane.type("/close");
    await pane.press("Enter");
    const left = await bob.next("leave", { timeout: 5000 });
    deepEqual([left.room, left.name, left.reason], ["#dev", "alice", "part"]);
    screen = await pane.waitFor(/^#lobby>$/m);
    match(screen.join("\n"), /You left #dev/);
    equal(statusOf(screen).split(" · ")[0], " [1:#lobby]");
    await pane.press("C-c");
    await pane.waitFor(/EXIT=0/);
  },
});

Deno.test({
  name:
    "interactive client lays out Chinese window names at 30 columns and keeps its place through a resize while scrolled",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = await serve({ ...local, rateBurst: 100 });
    const port = server.addr.port;
    await using ming = await connect({ port, name: "小明" });
    await using pane = await startChat(port, "alice", { columns: 30, rows: 20 });
    await pane.waitFor(/^#lobby>/m);
    await pane.type("/join #中文");
    await pane.press("Enter");
    await pane.waitFor(/^#中文>$/m);
    await ming.join("#中文");
    await ming.dm("alice", "你好");
    let screen = await pane.waitFor(/^ \[2:#中文\] 3:小明! /m);
    for (const row of screen) ok(displayWidth(row) <= 30, `${row} is wider than 30 columns`);

    // Window 1 fills up; scroll back in it, then resize both ways while scrolled.
    await pane.press("M-1");
    await pane.waitFor(/^ \[1:#lobby\]/m);
    for (let i = 1; i <= 40; i++) await ming.send(`line ${String(i).padStart(2, "0")}`);
    await pane.waitFor(/line 40/);
    await pane.press("PageUp");
    screen = await pane.waitFor(/ · ↑\d+/);
    const top = screen.find((row) => /line \d\d/.test(row))!;
    ok(!/line 40/.test(screen.join("\n")));
    await pane.resize(120, 20);
    screen = await pane.waitFor(/^ \[1:#lobby\] 3:小明! · ↑\d+ PgDn · alice @ /m);
    ok(!/line 40/.test(screen.join("\n")), "still scrolled after widening");
    // A new line while scrolled back does not move the view.
    await ming.send("line 41");
    await pane.press("M-2");
    await pane.waitFor(/^#中文>$/m);
    await pane.press("M-1");
    screen = await pane.waitFor(/^ \[1:#lobby\]/m);
    equal(
      screen.find((row) => /line \d\d/.test(row))?.replace(/^\S+ /, ""),
      top.replace(/^\S+ /, ""),
    );
    await pane.resize(30, 20);
    screen = await pane.waitFor(/ · ↑\d+/);
    for (const row of screen) ok(displayWidth(row) <= 30, `${row} is wider than 30 columns`);
    await pane.press("PageDown");
    await pane.press("PageDown");
    await pane.press("PageDown");
    screen = await pane.waitFor(/line 41/);
    ok(!/ · ↑\d+/.test(screen.join("\n")));
    await pane.press("M-3");
    screen = await pane.waitFor(/^小明>$/m);
    match(screen.join("\n"), /<小明>\s+你好/);
    await pane.press("C-c");
    await pane.waitFor(/EXIT=0/);
  },
});

Deno.test({
  name:
    "interactive client hides joins and leaves of people who have not spoken, until /set smart_filter off",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = await serve(local);
    const port = server.addr.port;
    await using pane = await startChat(port, "alice", { columns: 80, rows: 24 });
    await pane.waitFor(/^#lobby>/m);
    const eve = await connect({ port, name: "eve" });
    await using bob = await connect({ port, name: "bob" });
    await bob.send("hi all");
    await pane.waitFor(/<bob> hi all/);
    await bob.close();
    await pane.waitFor(/← bob left #lobby \(quit\)/);
    await eve.close();
    await using carol = await connect({ port, name: "carol" });
    await carol.send("after eve");
    let screen = await pane.waitFor(/<carol> after eve/);
    ok(!/eve (joined|left)|bob joined|carol joined/.test(screen.join("\n")), screen.join("\n"));
    await pane.type("/set smart_filter off");
    await pane.press("Enter");
    await pane.waitFor(/Every join, leave and rename is shown/);
    await using _dave = await connect({ port, name: "dave" });
    screen = await pane.waitFor(/→ dave joined #lobby/);
    await pane.type("/set");
    await pane.press("Enter");
    await pane.waitFor(/\*\*\* smart_filter off/);
    await pane.press("C-c");
    await pane.waitFor(/EXIT=0/);
  },
});

Deno.test({
  name: "interactive client shows being away in the status bar, and who else is away",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = await serve(local);
    const port = server.addr.port;
    await using bob = await connect({ port, name: "bob" });
    await using pane = await startChat(port, "alice", { columns: 80, rows: 24 });
    await pane.waitFor(/^#lobby>/m);
    await pane.type("/away out for lunch");
    await pane.press("Enter");
    let screen = await pane.waitFor(/You are away: out for lunch/);
    await pane.waitFor(/^ \[1:#lobby\] · alice \(away\) @ /m);
    equal((await bob.dm("alice", "lunch?")).away, "out for lunch");
    await pane.type("/back");
    await pane.press("Enter");
    screen = await pane.waitFor(/^ \[1:#lobby\] 2:bob! · alice @ /m);
    match(screen.join("\n"), /You are back/);
    await bob.away("in a meeting");
    await pane.type("/msg bob quick question");
    await pane.press("Enter");
    await pane.waitFor(/bob is away: in a meeting/);
    await pane.type("/who");
    await pane.press("Enter");
    await pane.waitFor(/In #lobby: alice, bob \(away: in a meeting\)/);
    await pane.press("C-c");
    await pane.waitFor(/EXIT=0/);
  },
});

Deno.test({
  name:
    "interactive client ignores a name's messages, actions, private messages and offers, across restarts",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = await serve(local);
    const port = server.addr.port;
    const config = await Deno.makeTempDir();
    try {
      const env = `XDG_CONFIG_HOME=${shellQuote(config)} XDG_DATA_HOME=${HOME}/data`;
      await using bob = await connect({ port, name: "bob" });
      await using carol = await connect({ port, name: "carol" });
      {
        await using pane = await startChat(port, "alice", { columns: 80, rows: 24 }, "", env);
        await pane.waitFor(/^#lobby>/m);
        await pane.type("/ignore BOB");
        await pane.press("Enter");
        await pane.waitFor(/Ignoring BOB/);
        await pane.press("C-c");
        await pane.waitFor(/EXIT=0/);
      }
      equal(await Deno.readTextFile(`${config}/chat/ignore`), "BOB\n");
      await using pane = await startChat(port, "alice", { columns: 80, rows: 24 }, "", env);
      await pane.waitFor(/^#lobby>/m);
      await bob.send("spam in the room");
      await bob.send("spams", { action: true });
      await bob.dm("alice", "spam in private");
      const offer = bob.sendFile("alice", new TextEncoder().encode("x"), { name: "spam.txt" });
      offer.catch(() => {});
      await carol.send("after bob");
      let screen = await pane.waitFor(/<carol> after bob/);
      ok(!/spam|2:bob/.test(screen.join("\n")), screen.join("\n"));
      await pane.type("/ignore");
      await pane.press("Enter");
      await pane.waitFor(/You ignore BOB/);
      await pane.type("/unignore bob");
      await pane.press("Enter");
      await pane.waitFor(/No longer ignoring bob/);
      await bob.send("heard again");
      screen = await pane.waitFor(/<bob> heard again/);
      await pane.press("C-c");
      await pane.waitFor(/EXIT=0/);
      equal(await Deno.readTextFile(`${config}/chat/ignore`), "");
    } finally {
      await Deno.remove(config, { recursive: true });
    }
  },
});

Deno.test({
  name: "interactive client finds text in the history of the window's room, a page at a time",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = await serve({ ...local, rateBurst: 100 });
    const port = server.addr.port;
    await using bob = await connect({ port, name: "bob" });
    for (let i = 1; i <= 25; i++) await bob.send(`deploy number ${i}`);
    await bob.send("unrelated chatter");
    await using pane = await startChat(port, "alice", { columns: 80, rows: 40 }, "");
    await pane.waitFor(/^#lobby>/m);
    await pane.type("/find DEPLOY NUMBER");
    await pane.press("Enter");
    let screen = await pane.waitFor(/\/find shows older ones/);
    match(screen.join("\n"), /Found 20 for "DEPLOY NUMBER" in #lobby:\n.*<bob> deploy number 6\n/);
    await pane.press("C-l");
    await pane.type("/find");
    await pane.press("Enter");
    screen = await pane.waitFor(/Found 5 for "DEPLOY NUMBER" in #lobby \(older\):/);
    match(
      screen.join("\n"),
      /\(older\):\n.*<bob> deploy number 1\n(.*\n){3}.*<bob> deploy number 5\n/,
    );
    await pane.type("/find");
    await pane.press("Enter");
    await pane.waitFor(/Nothing older to find/);
    await pane.press("C-c");
    await pane.waitFor(/EXIT=0/);
  },
});

Deno.test({
  name: "interactive client colours bob and 小明 differently on a 256-colour terminal",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = await serve(local);
    const port = server.addr.port;
    const chat = [Deno.execPath(), "run", "-q", "-P=chat", "--no-prompt", "main.ts", "connect"]
      .concat([`127.0.0.1:${port}`, "--name", "alice"]).map(shellQuote).join(" ");
    // NO_COLOR (set by CI, say) would win over FORCE_COLOR: this test is about colours.
    const script =
      `cd ${shellQuote(root)}; unset NO_COLOR; ${homes} TERM=xterm-256color FORCE_COLOR=1 ` +
      `${chat}; echo "EXIT=$?"; exec sleep 60`;
    await using pane = await TmuxSession.start(`sh -c ${shellQuote(script)}`, {
      columns: 80,
      rows: 20,
    });
    await pane.waitFor(/^#lobby>/m);
    await using bob = await connect({ port, name: "bob" });
    await using ming = await connect({ port, name: "小明" });
    await bob.send("from bob");
    await ming.send("from ming");
    await pane.waitFor(/<小明> from ming/);
    const colours = await pane.run("capture-pane", "-p", "-e");
    const colourOf = (name: string) => new RegExp(`\\x1b\\[38;5;(\\d+)m${name}`).exec(colours)?.[1];
    const [bobs, mings] = [colourOf("bob"), colourOf("小明")];
    ok(bobs !== undefined && mings !== undefined, colours);
    ok(bobs !== mings, `bob ${bobs}, 小明 ${mings}`);
    await pane.press("C-c");
    await pane.waitFor(/EXIT=0/);
  },
});
