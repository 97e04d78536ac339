import { deepEqual } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ALLOWED, type Allowed, checkLayers, RULES } from "../tools/check_layers.ts";
import { withFiles } from "./_helpers.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** A project that keeps to the rules: every layer, imports only downwards. */
const CLEAN: Record<string, string> = {
  "protocol/frames.ts": 'import "./limits.ts";\nexport const frames = 1;',
  "protocol/limits.ts": "export const limits = 1;",
  "_common/send_queue.ts": 'import "../protocol/frames.ts";\nimport "./_deps_x.ts";',
  "_common/_deps_x.ts": 'export * from "npm:left-pad@1.3.0";',
  "_server/hub.ts":
    'import "../_common/send_queue.ts";\nimport type {} from "../protocol/limits.ts";',
  "server.ts": 'import "./_server/hub.ts";',
  "_client/link.ts": 'import "../protocol/frames.ts";',
  "client.ts": 'export const later = () => import("./_client/link.ts");',
  "tui/screen.ts": 'import type {} from "../client.ts";',
  "cli/serve_command.ts": 'import "../server.ts";\nimport "../tui/screen.ts";',
  "main.ts":
    'import data from "./deno.json" with { type: "json" };\nimport "./cli/serve_command.ts";',
  "deno.json": "{}",
  "mod.ts": [
    "/**",
    " * ```ts",
    ' * import "./_server/hub.ts";',
    " * ```",
    " *",
    " * @module",
    " */",
    'export * from "./server.ts";',
    'export * from "./client.ts";',
  ].join("\n"),
  "testing.ts": 'import "./mod.ts";',
  "tests/hub_test.ts": 'import "../_server/hub.ts";\nimport "../_common/_deps_x.ts";',
};

Deno.test("every module of this project keeps to its layer, with no import cycle", async () => {
  deepEqual(await checkLayers(ROOT, { allowed: ALLOWED }), []);
});

Deno.test("docs/ARCHITECTURE.md shows the layer rules the check enforces", async () => {
  const text = await Deno.readTextFile(join(ROOT, "docs", "ARCHITECTURE.md"));
  const table = text.slice(text.indexOf("| Layer"), text.indexOf("\n\n", text.indexOf("| Layer")));
  const documented: Record<string, Allowed> = {};
  for (const row of table.split("\n").slice(2)) {
    const [, layers = "", may = ""] = row.split("|").map((cell) => cell.trim());
    const names = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((match) => match[1]);
    for (const layer of names(layers)) {
      if (layer === undefined) continue;
      documented[layer] = may.startsWith("anything")
        ? "anything"
        : names(may).filter((name) => name !== undefined);
    }
  }
  deepEqual(documented, RULES);
});

Deno.test("the layer check passes a project that keeps to the rules", async () => {
  await withFiles(CLEAN, async (dir) => {
    deepEqual(await checkLayers(dir), []);
  });
});

Deno.test("the layer check reports forbidden imports, one line each", async () => {
  await withFiles({
    ...CLEAN,
    "protocol/frames.ts": 'import "../_common/send_queue.ts";',
    "_common/send_queue.ts": "export {};",
    "_server/hub.ts": 'import "../_client/link.ts";',
    "tui/screen.ts": '\nimport "../cli/serve_command.ts";',
    "cli/serve_command.ts": 'const hub = () => import("../_server/hub.ts");',
    "mod.ts": 'import type {} from "./_common/send_queue.ts";',
    "server.ts": 'import "./_common/_deps_x.ts";',
    "_helper.ts": "export {};",
  }, async (dir) => {
    deepEqual(
      (await checkLayers(dir)).map(({ module, line, message }) => `${module}:${line} ${message}`),
      [
        "_helper.ts:0 belongs to no layer: move it into a folder that says who owns it",
        '_server/hub.ts:1 imports "_client/link.ts", but _server/ may import only _common/, protocol/',
        'cli/serve_command.ts:1 imports "_server/hub.ts", but cli/ may import only tui/, ' +
        "server.ts, client.ts, mod.ts, _common/, protocol/",
        'mod.ts:1 imports "_common/send_queue.ts", but mod.ts may import only server.ts, ' +
        "client.ts, protocol/",
        'protocol/frames.ts:1 imports "_common/send_queue.ts", but protocol/ may import ' +
        "nothing else of ours",
        'server.ts:1 imports "_common/_deps_x.ts", which wraps third-party code for its own ' +
        "folder only",
        'tui/screen.ts:2 imports "cli/serve_command.ts", but tui/ may import only client.ts, ' +
        "_common/, protocol/",
      ],
    );
  });
});

Deno.test("the layer check reports each import cycle as the path round it", async () => {
  await withFiles({
    ...CLEAN,
    // Type-only and dynamic imports count: they tie the modules together all the same.
    "_server/hub.ts": 'import type {} from "./transfers.ts";',
    "_server/transfers.ts": 'import "./rooms.ts";',
    "_server/rooms.ts": 'export const load = () => import("./hub.ts");',
    "tests/_helpers.ts": 'import "./a_test.ts";',
    "tests/a_test.ts": 'import "./_helpers.ts";',
    "tools/self.ts": 'import "./self.ts";',
  }, async (dir) => {
    deepEqual((await checkLayers(dir)).map(({ module, message }) => `${module} ${message}`), [
      "_server/hub.ts import cycle: _server/hub.ts -> _server/transfers.ts -> " +
      "_server/rooms.ts -> _server/hub.ts",
      "tests/_helpers.ts import cycle: tests/_helpers.ts -> tests/a_test.ts -> tests/_helpers.ts",
      "tools/self.ts import cycle: tools/self.ts -> tools/self.ts",
    ]);
  });
});

Deno.test("the layer check tolerates listed imports, and fails once they are gone", async () => {
  await withFiles({
    ...CLEAN,
    "_server/hub.ts": 'import "./transfers.ts";',
    "_server/transfers.ts": 'import "./hub.ts";',
  }, async (dir) => {
    const why = "being untangled";
    deepEqual(
      await checkLayers(dir, {
        allowed: [{ from: "_server/transfers.ts", to: "_server/hub.ts", why }],
      }),
      [],
    );
    deepEqual(
      await checkLayers(dir, { allowed: [{ from: "mod.ts", to: "_server/hub.ts", why }] }),
      [
        {
          module: "_server/hub.ts",
          line: 0,
          message: "import cycle: _server/hub.ts -> _server/transfers.ts -> _server/hub.ts",
        },
        {
          module: "mod.ts",
          line: 0,
          message: 'no longer imports "_server/hub.ts": remove it from the tolerated imports',
        },
      ],
    );
  });
});
