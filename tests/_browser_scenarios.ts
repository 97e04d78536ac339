/**
 * The web page in a real browser: Debian's Chromium, headless, driven by
 * playwright-core. Each scenario runs in its own process (the driver reads
 * parts of /proc that only a process with every permission may):
 *
 * ```sh
 * deno run -A tests/_browser_scenarios.ts chat
 * ```
 *
 * `tests/browser_test.ts` runs them. With `CHAT_SCREENSHOTS=1` the chat
 * scenario also writes the screenshots in docs/.
 *
 * @module
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { type ChatServer, connect, serve, type ServeOptions } from "../mod.ts";
import { type Browser, chromium, type Page } from "./_deps_playwright.ts";
import { withTempDir } from "./_helpers.ts";
import { RawPeer } from "./_raw.ts";
import { withTimeout } from "./_cli.ts";

/** What the functions run inside the page use of it (they run there, not here). */
interface PageNode {
  readonly id: string;
  readonly textContent: string | null;
}
declare const document: {
  querySelector(selector: string): PageNode | null;
  querySelectorAll(selector: string): ArrayLike<PageNode> & Iterable<PageNode>;
  readonly activeElement: PageNode | null;
  readonly body: PageNode;
};

const CHROMIUM = "/usr/bin/chromium";

const SCREENSHOTS = (() => {
  try {
    return Deno.env.get("CHAT_SCREENSHOTS") === "1";
  } catch {
    return false;
  }
})();

const options = { hostname: "127.0.0.1", port: 0, webPort: 0 } satisfies ServeOptions;
/** Generous: the machine may be busy. */
const WAIT = 20_000;

/** The scenarios, by name. */
const SCENARIOS: Record<string, (browser: Browser) => Promise<void>> = {};

function browserTest(name: string, fn: (browser: Browser) => Promise<void>): void {
  SCENARIOS[name] = fn;
}

function pageUrl(server: ChatServer, query = ""): string {
  return `http://127.0.0.1:${server.webAddr!.port}/${query}`;
}

/** The texts of the messages shown in the current conversation, in order. */
function texts(page: Page): Promise<string[]> {
  return page.$$eval("#log .line .text", (nodes) => nodes.map((node) => node.textContent ?? ""));
}

async function waitForText(page: Page, text: string): Promise<void> {
  await page.waitForFunction(
    (wanted) =>
      [...document.querySelectorAll("#log .line .text")].some((node) =>
        node.textContent === wanted
      ),
    text,
    { timeout: WAIT },
  );
}

async function type(page: Page, text: string): Promise<void> {
  await page.fill("#input", text);
  await page.press("#input", "Enter");
}

async function readUntil(peer: RawPeer, pattern: RegExp): Promise<string> {
  const read = async () => {
    while (true) {
      const line = await peer.line();
      if (line === null) throw new Error(`The connection closed before ${pattern}`);
      if (pattern.test(line)) return line;
    }
  };
  return await withTimeout(read(), WAIT, `a line like ${pattern}`);
}

browserTest("chat", async (browser) => {
  await using server = await serve(options);
  const page = await browser.newPage();
  page.on("console", (message) => console.error(`page: ${message.text()}`));
  page.on("pageerror", (error) => console.error(`page error: ${error.message}`));
  await page.goto(pageUrl(server, "?name=小红"));
  // Joined at once, and the message box has the focus.
  await page.waitForFunction(() => document.activeElement?.id === "input", null, {
    timeout: WAIT,
  });
  await using bob = await connect({ hostname: "127.0.0.1", port: server.addr.port, name: "bob" });
  // On 127.0.0.1 the page is a secure context: it proved an Ed25519 key, which binds its name.
  const fingerprint = await page.evaluate(() =>
    (globalThis as unknown as { chat: { identity?: { fingerprint: string } } }).chat.identity
      ?.fingerprint
  );
  ok(fingerprint?.startsWith("SHA256:"), String(fingerprint));
  equal((await bob.whois("小红")).fingerprint, fingerprint);
  await using carol = await RawPeer.connect(server.addr.port);
  await carol.write("carol\r\n");
  await readUntil(carol, /You are carol/);
  await page.waitForFunction(
    () => document.querySelector("#members")?.textContent?.includes("carol"),
    null,
    { timeout: WAIT },
  );

  await bob.send("你好，小红！Welcome 👋");
  await waitForText(page, "你好，小红！Welcome 👋");
  await carol.write("hello from nc, 大家好\r\n");
  await waitForText(page, "hello from nc, 大家好");
  await type(page, "谢谢 bob and carol 🎉");
  const heard = await bob.next("message", { timeout: WAIT });
  deepEqual([heard.from, heard.text], ["carol", "hello from nc, 大家好"]);
  const fromPage = await bob.next("message", { timeout: WAIT });
  deepEqual([fromPage.from, fromPage.text], ["小红", "谢谢 bob and carol 🎉"]);
  await readUntil(carol, /<小红> 谢谢 bob and carol 🎉/);
  // A mention is highlighted.
  await bob.send("小红, look at this");
  await waitForText(page, "小红, look at this");
  ok(await page.$eval("#log .line.mention .text", (node) => node.textContent) !== null);
  // A command typed as in the terminal client, and a private conversation.
  await type(page, "/me waves");
  const action = await bob.next("message", { timeout: WAIT });
  deepEqual([action.text, action.action], ["waves", true]);
  await type(page, "/msg bob 私聊 hi");
  const dm = await bob.next("dm", { timeout: WAIT });
  deepEqual([dm.from, dm.text], ["小红", "私聊 hi"]);
  await bob.dm("小红", "回复 reply");
  await page.click('#people li[data-id="@bob"]');
  await waitForText(page, "回复 reply");

  // A notice reads -bob-; a reason for leaving is shown with the leave.
  await page.click('#rooms li[data-id="#lobby"]');
  await bob.send("the build is green", { notice: true });
  await waitForText(page, "the build is green");
  equal(
    await page.$$eval("#log .line .from", (nodes) => nodes.at(-1)?.textContent ?? ""),
    "-bob-",
  );
  await carol.write("/quit gone home\r\n");
  await page.waitForFunction(
    () =>
      [...document.querySelectorAll("#log .line.event")].some((node) =>
        node.textContent === "carol left (quit: gone home)"
      ),
    null,
    { timeout: WAIT },
  );

  if (SCREENSHOTS) await screenshots(browser, server);
  await page.close();
});

/** The page as people see it, for the README. */
async function screenshots(browser: Browser, server: ChatServer): Promise<void> {
  await using ana = await connect({ hostname: "127.0.0.1", port: server.addr.port, name: "ana" });
  await ana.join("#dev");
  await ana.topic("#dev", "release 0.2 🚀");
  await ana.send("早上好！Good morning ☀️", { room: "#dev" });
  await ana.send("The build is green ✅", { room: "#dev" });
  for (const scheme of ["light", "dark"] as const) {
    for (const [label, width, height] of [["desktop", 1100, 640], ["phone", 390, 780]] as const) {
      const context = await browser.newContext({
        viewport: { width, height },
        colorScheme: scheme,
        deviceScaleFactor: 1,
      });
      const page = await context.newPage();
      await page.goto(pageUrl(server, `?name=${scheme === "light" ? "李雷" : "Mei"}${label}`));
      await page.waitForSelector("#app:not([hidden])", { timeout: WAIT });
      await type(page, "/join #dev");
      await waitForText(page, "The build is green ✅");
      await type(page, "你好 everyone 👋 — 来自浏览器");
      await waitForText(page, "你好 everyone 👋 — 来自浏览器");
      await ana.send(`${scheme === "light" ? "李雷" : "Mei"}${label}: welcome! 欢迎 🎉`, {
        room: "#dev",
      });
      await page.waitForSelector("#log .line.mention", { timeout: WAIT });
      await page.screenshot({ path: `docs/web-${label}-${scheme}.png` });
      await context.close();
    }
  }
}

browserTest("hostile", async (browser) => {
  await using server = await serve(options);
  const page = await browser.newPage();
  // A name that is markup is refused, and the refusal is shown as text.
  await page.goto(pageUrl(server, `?name=${encodeURIComponent("<img src=x onerror=pwn()>")}`));
  await page.waitForSelector("#login:not([hidden])", { timeout: WAIT });
  await page.waitForFunction(
    () => document.querySelector("#login-error")?.textContent?.includes("<img"),
    null,
    { timeout: WAIT },
  );
  await page.fill("#login-name", "dana");
  await page.click("#login button");
  await page.waitForSelector("#app:not([hidden])", { timeout: WAIT });
  await using eve = await connect({ hostname: "127.0.0.1", port: server.addr.port, name: "eve" });
  const hostile = '<img src=x onerror="window.pwned=1"><b>bold</b> \u202Egnp.exe';
  await eve.send(hostile);
  await eve.topic("#lobby", "<script>window.pwned=2</script>");
  const file = new TextEncoder().encode("x");
  // Never accepted: the offer ends when eve leaves.
  eve.sendFile("dana", file, { name: "<img src=y onerror=pwn()>\u202Efdp.exe" }).catch(() => {});
  await page.waitForSelector("#people li", { timeout: WAIT });
  const shown = '<img src=x onerror="window.pwned=1"><b>bold</b> \ufffdgnp.exe';
  await waitForText(page, shown);
  await page.click('#people li[data-id="@eve"]');
  await page.waitForSelector(".file", { timeout: WAIT });
  const state = await page.evaluate(() => ({
    images: document.querySelectorAll("img").length,
    bold: document.querySelectorAll("#log b").length,
    scripts: document.querySelectorAll("script").length,
    pwned: (globalThis as { pwned?: number }).pwned,
    file: document.querySelector(".file")?.textContent ?? "",
    topic: document.querySelector("#topic")?.textContent ?? "",
    body: document.body.textContent ?? "",
  }));
  equal(state.images, 0);
  equal(state.bold, 0);
  equal(state.scripts, 1);
  equal(state.pwned, undefined);
  ok(state.file.includes("<img src=y onerror=pwn()>\ufffdfdp.exe"), state.file);
  ok(!state.body.includes("\u202E"));
  await page.close();
});

browserTest("image", async (browser) => {
  await using server = await serve({ ...options, rateLimit: 1000, rateBurst: 1000 });
  const page = await browser.newPage();
  await page.goto(pageUrl(server, "?name=web"));
  await page.waitForSelector("#app:not([hidden])", { timeout: WAIT });
  await using bob = await connect({ hostname: "127.0.0.1", port: server.addr.port, name: "bob" });
  await page.waitForFunction(
    () => document.querySelector("#members")?.textContent?.includes("bob"),
    null,
    { timeout: WAIT },
  );
  const image = await Deno.readFile(new URL("../docs/web-desktop-light.png", import.meta.url))
    .catch(() => tinyPng());
  const sha256 = createHash("sha256").update(image).digest("hex");
  await withTempDir(async (dir) => {
    // Browser → bob, offered to the room.
    await page.setInputFiles("#file", {
      name: "screen.png",
      mimeType: "image/png",
      buffer: Buffer.from(image),
    });
    const offer = await bob.next("offer", { timeout: WAIT });
    equal(offer.sha256, sha256);
    const saved = await offer.accept({ dir });
    equal(saved.sha256, sha256);
    equal(
      createHash("sha256").update(await Deno.readFile(saved.path)).digest("hex"),
      sha256,
    );
    await page.waitForFunction(
      () => document.querySelector(".file .status")?.textContent?.includes("received it"),
      null,
      { timeout: WAIT },
    );
    // bob → browser: accepted with a click, checked, shown inline.
    const sending = bob.sendFile("web", image, { name: "back.png", mime: "image/png" });
    await page.waitForSelector('#people li[data-id="@bob"]', { timeout: WAIT });
    await page.click('#people li[data-id="@bob"]');
    await page.click(".file button:text('Accept')", { timeout: WAIT });
    const sent = await sending;
    deepEqual(sent.to, ["web"]);
    await page.waitForSelector("#log .file img.preview", { timeout: WAIT });
    const width = await page.$eval(
      "#log .file img.preview",
      (img) => (img as unknown as { naturalWidth: number }).naturalWidth,
    );
    ok(width > 0);
  });
  await page.close();
});

browserTest("history", async (browser) => {
  await using server = await serve({ ...options, rateLimit: 1000, rateBurst: 1000 });
  {
    await using ana = await connect({ hostname: "127.0.0.1", port: server.addr.port, name: "ana" });
    for (let i = 1; i <= 130; i++) await ana.send(`消息 ${i}`);
  }
  const page = await browser.newPage({ viewport: { width: 900, height: 500 } });
  await page.goto(pageUrl(server, "?name=reader"));
  await waitForText(page, "消息 130");
  // Scrolling up loads older pages until the first message.
  for (let round = 0; round < 10 && !(await texts(page)).includes("消息 1"); round++) {
    const before = (await texts(page)).length;
    await page.$eval("#log", (log) => (log as unknown as { scrollTop: number }).scrollTop = 0);
    await page.waitForFunction(
      (count) => document.querySelectorAll("#log .line .text").length > count,
      before,
      { timeout: WAIT },
    );
  }
  deepEqual(await texts(page), Array.from({ length: 130 }, (_, i) => `消息 ${i + 1}`));
  // A message in another room counts as unread there.
  await type(page, "/join #other");
  await using bob = await connect({ hostname: "127.0.0.1", port: server.addr.port, name: "bob" });
  await bob.send("unread one");
  await bob.send("unread two");
  await page.waitForFunction(
    () => document.querySelector('#rooms li[data-id="#lobby"] .unread')?.textContent === "2",
    null,
    { timeout: WAIT },
  );
  await page.close();
});

/** A valid 1×1 PNG. */
function tinyPng(): Uint8Array {
  return Uint8Array.from(
    atob(
      "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
    ),
    (c) => c.charCodeAt(0),
  );
}

/** Two free ports on 127.0.0.1. */
function freePorts(): [number, number] {
  const a = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const b = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const ports: [number, number] = [a.addr.port, b.addr.port];
  a.close();
  b.close();
  return ports;
}

browserTest("restart", async (browser) => {
  await withTempDir(async (dir) => {
    const data = `${dir}/chat.db`;
    const [port, webPort] = freePorts();
    const at = { hostname: "127.0.0.1", port, webPort, data, resumeGrace: 0 };
    let server = await serve(at);
    const page = await browser.newPage();
    try {
      await page.goto(`http://127.0.0.1:${webPort}/?name=web`);
      await page.waitForSelector("#app:not([hidden])", { timeout: WAIT });
      await type(page, "/join #dev");
      await page.waitForFunction(() => document.querySelector("#title")?.textContent === "#dev");
      {
        await using bob = await connect({ hostname: "127.0.0.1", port, name: "bob" });
        await bob.join("#dev");
        for (const text of ["one", "two"]) await bob.send(text, { room: "#dev" });
        await waitForText(page, "two");
      }
      await server.close();
      await page.waitForSelector("#status.offline", { timeout: WAIT });
      // Typed while offline: sent once the page is back, stored once.
      await type(page, "typed offline");
      // Meanwhile, on another port the page cannot reach, the room goes on.
      {
        await using other = await serve({ ...at, port: 0, webPort: 0 });
        await using bob = await connect({
          hostname: "127.0.0.1",
          port: other.addr.port,
          name: "bob",
        });
        await bob.join("#dev");
        for (const text of ["three", "四", "five"]) await bob.send(text, { room: "#dev" });
      }
      server = await serve(at);
      await page.waitForSelector("#status:not(.offline)", { state: "attached", timeout: WAIT });
      await using bob = await connect({ hostname: "127.0.0.1", port, name: "bob" });
      await bob.join("#dev");
      await bob.send("six", { room: "#dev" });
      await waitForText(page, "six");
      await type(page, "back 回来了");
      await waitForText(page, "back 回来了");
      const heard: string[] = [];
      while (heard.at(-1) !== "back 回来了") {
        const message = await bob.next("message", { timeout: WAIT });
        if (message.history !== true && message.from === "web") heard.push(message.text);
      }
      await waitForText(page, "typed offline");
      const shown = await texts(page);
      equal(shown.filter((text) => text === "typed offline").length, 1);
      deepEqual(shown.filter((text) => text !== "typed offline"), [
        "one",
        "two",
        "three",
        "四",
        "five",
        "six",
        "back 回来了",
      ]);
      {
        // The room's history has it once too.
        await using check = await connect({ hostname: "127.0.0.1", port, name: "check" });
        await check.join("#dev", { history: 0 });
        const stored = await check.history("#dev");
        equal(stored.filter((message) => message.text === "typed offline").length, 1);
      }
    } finally {
      await page.close();
      await server.close();
    }
  });
});

if (import.meta.main) {
  const name = Deno.args[0] ?? "";
  const scenario = SCENARIOS[name];
  if (scenario === undefined) {
    console.error(`Unknown scenario "${name}": use one of ${Object.keys(SCENARIOS).join(", ")}`);
    Deno.exit(2);
  }
  console.error(`Running "${name}"`);
  const browser = await chromium.launch({ executablePath: CHROMIUM, timeout: 30_000 });
  console.error("Browser launched");
  try {
    await scenario(browser);
  } finally {
    await browser.close();
  }
}
