/**
 * The file-transfer benchmark: one file (1 GiB by default) from one client to
 * another through a real `chat serve` process over loopback. Reports the
 * rate and the server's peak RSS, which must stay low: the server relays, it
 * never holds a file.
 *
 * ```sh
 * deno run -A bench/transfer.ts [--mib 1024]
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { connect } from "../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { mib: { type: "string", default: "1024" } },
});
const mib = Number(values.mib);
const root = new URL("..", import.meta.url).pathname;
const dir = await Deno.makeTempDir({ prefix: "chat-bench-transfer-" });
const server = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-q",
    "-P=chat",
    "--no-prompt",
    "main.ts",
    "serve",
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--data",
    ":memory:",
  ],
  cwd: root,
  env: { XDG_DATA_HOME: `${dir}/data`, XDG_CONFIG_HOME: `${dir}/config` },
  stdout: "piped",
  stderr: "null",
}).spawn();

function status(field: string): number {
  const text = Deno.readTextFileSync(`/proc/${server.pid}/status`);
  return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(text)?.[1] ?? 0) / 1024;
}

try {
  const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let output = "";
  let port = 0;
  while (port === 0) {
    const { value, done } = await reader.read();
    if (done) throw new Error("The server exited before it listened");
    output += value;
    port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(output)?.[1] ?? 0);
  }
  // The server's output is not needed any more: stop reading it.
  await reader.cancel();

  // A file of pseudo-random bytes (random enough that nothing can compress it).
  const path = `${dir}/big.bin`;
  {
    using file = await Deno.open(path, { write: true, create: true });
    const block = new Uint8Array(1024 * 1024);
    for (let i = 0; i < mib; i++) {
      crypto.getRandomValues(block.subarray(0, 65536));
      block.copyWithin(65536, 0, block.length - 65536);
      let offset = 0;
      while (offset < block.length) offset += await file.write(block.subarray(offset));
    }
  }
  const baseline = status("VmRSS");
  await using alice = await connect({ port, name: "alice" });
  await using bob = await connect({ port, name: "bob" });
  const started = performance.now();
  const sending = alice.sendFile("bob", path);
  const offer = await bob.next("offer", { timeout: 10_000 });
  const received = await offer.accept({ dir: `${dir}/in` });
  const sent = await sending;
  const seconds = (performance.now() - started) / 1000;
  const rate = mib * 1024 * 1024 / seconds / 1e6;
  const peak = status("VmHWM");
  const ok = received.sha256 === sent.sha256 && received.size === mib * 1024 * 1024;
  const result = {
    mib,
    seconds: Number(seconds.toFixed(2)),
    megabytesPerSecond: Number(rate.toFixed(0)),
    serverRssBeforeMiB: Number(baseline.toFixed(1)),
    serverPeakRssMiB: Number(peak.toFixed(1)),
    hashMatched: ok,
  };
  console.log(JSON.stringify(result));
  console.log(
    `transfer: ${mib} MiB in ${result.seconds} s = ${result.megabytesPerSecond} MB/s (target ≥ 200), ` +
      `server peak RSS ${result.serverPeakRssMiB} MiB (target < 64), hash ${
        ok ? "matched" : "DID NOT MATCH"
      }`,
  );
} finally {
  server.kill("SIGTERM");
  await server.status;
  await Deno.remove(dir, { recursive: true });
}
