import { deepEqual, equal, match } from "node:assert/strict";
import { connect } from "../mod.ts";
import { formatBytes } from "../tui/entries.ts";
import { joinNegativeValues } from "../cli/_args.ts";
import { runChat, startServer, stopServer } from "./_cli.ts";

/** The column where the description of each option starts, for each line of the Options. */
function descriptionColumns(help: string): number[] {
  const options = help.slice(
    help.indexOf("Options:\n") + 9,
    help.indexOf("\n\n", help.indexOf("Options:\n")),
  );
  return options.split("\n").map((line) =>
    line.startsWith("  -")
      ? /^ {2}-\S*(?: \S+)*? {2,}/.exec(line)?.[0].length ?? -1
      : /^ */.exec(line)![0].length
  );
}

Deno.test("each command's help starts every option's description in one column", async (t) => {
  for (const command of ["serve", "connect", "send"]) {
    await t.step(command, async () => {
      const { code, stdout } = await runChat([command, "--help"]);
      equal(code, 0);
      const columns = descriptionColumns(stdout);
      const first = columns[0]!;
      deepEqual(columns, columns.map(() => first), stdout);
    });
  }
});

Deno.test("a negative number reaches the option's check instead of counting as a missing value", async (t) => {
  for (
    const [args, pattern] of [
      [
        ["serve", "--history", "-5"],
        /^chat: Invalid --history "-5": use a whole number, 0 or more/,
      ],
      [["serve", "--keep-days", "-1"], /^chat: Invalid --keep-days "-1"/],
      [["serve", "--port", "-1"], /^chat: Invalid --port "-1"/],
    ] as const
  ) {
    await t.step(args.join(" "), async () => {
      const result = await runChat([...args]);
      equal(result.code, 2);
      match(result.stderr, pattern);
    });
  }
  deepEqual(joinNegativeValues(["--history", "-5", "-r", "dev", "--", "--x", "-1"]), [
    "--history=-5",
    "-r",
    "dev",
    "--",
    "--x",
    "-1",
  ]);
});

Deno.test("chat send -r adds the # to a room name, like /join", async () => {
  const { server, port } = await startServer();
  try {
    await using alice = await connect({ hostname: "127.0.0.1", port, name: "alice" });
    await alice.join("#dev");
    const result = await runChat([
      "send",
      `127.0.0.1:${port}`,
      "--name",
      "bob",
      "--no-key",
      "-r",
      "dev",
      "deployed",
    ]);
    equal(result.code, 0, result.stderr);
    let message;
    do message = await alice.next("message", { timeout: 10_000 }); while (message.room !== "#dev");
    deepEqual([message.room, message.from, message.text], ["#dev", "bob", "deployed"]);
  } finally {
    await stopServer(server);
  }
});

Deno.test("sizes are counted in powers of 1024 and named KiB, MiB, GiB", () => {
  equal(formatBytes(512), "512 B");
  equal(formatBytes(1536), "1.5 KiB");
  equal(formatBytes(1.5 * 1024 * 1024), "1.5 MiB");
  equal(formatBytes(2 * 1024 ** 3), "2.0 GiB");
});
