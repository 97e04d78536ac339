/**
 * The web page in headless Chromium (Debian's /usr/bin/chromium): each
 * scenario of `_browser_scenarios.ts` runs in its own process and must pass.
 * Skipped, with a message, when Chromium is not installed.
 */

import { equal } from "node:assert/strict";
import { withTimeout } from "./_cli.ts";

const CHROMIUM = "/usr/bin/chromium";
const hasChromium = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();
if (!hasChromium) console.log(`Skipping the browser tests: ${CHROMIUM} is not installed`);

const SCENARIO = new URL("./_browser_scenarios.ts", import.meta.url);

function scenario(name: string, description: string): void {
  Deno.test({
    name: `${description} (Chromium)`,
    ignore: !hasChromium,
    async fn() {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--quiet", "--no-prompt", SCENARIO.pathname, name],
        cwd: new URL("../", import.meta.url),
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
      try {
        const { code, stdout, stderr } = await withTimeout(
          child.output(),
          130_000,
          `the "${name}" scenario`,
        );
        const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
        equal(code, 0, `The "${name}" scenario failed:\n${output}`);
      } finally {
        clearTimeout(timer);
      }
    },
  });
}

scenario("chat", "a browser user chats with a library client and an nc user");
scenario("hostile", "hostile names, messages and file names are shown as text");
scenario("image", "an image goes from the browser to a library client and back, hashes matching");
scenario("history", "scrolling up loads older pages, and other rooms count unread messages");
scenario("restart", "the page reconnects across a server restart with no gap and no duplicate");
