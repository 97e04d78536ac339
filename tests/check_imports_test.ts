import { deepEqual } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { checkImports, entryPoints } from "../tools/check_imports.ts";
import { withFiles } from "./_helpers.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

Deno.test("every import of the library and the command resolves from any importer", async () => {
  deepEqual(await entryPoints(ROOT), ["./main.ts", "./mod.ts", "./testing.ts"]);
  deepEqual(await checkImports(ROOT), []);
});

Deno.test("the import check reports bare, unpinned, misplaced and doubly pinned imports", async () => {
  await withFiles({
    "deno.json": JSON.stringify({ exports: { ".": "./mod.ts" } }),
    "mod.ts": [
      'import "./a.ts";',
      'import pad from "left-pad";',
      'export * from "./_deps_width.ts";',
      'export * from "./_deps_old_width.ts";',
      'export const later = () => import("./lazy.ts");',
      "export { pad };",
    ].join("\n"),
    "_deps_width.ts": 'export { default as width } from "npm:string-width@8.3.0";',
    "_deps_old_width.ts": 'export { default as oldWidth } from "npm:string-width@7.2.0";',
    "a.ts": 'import "node:path";\nimport "npm:string-width@8.3.0";',
    "lazy.ts": 'import "https://example.com/x.ts";\nexport * from "./_deps_loose.ts";',
    "_deps_loose.ts": 'export * from "npm:string-width@^8";',
    // Tests may import what they like: they are not reachable from the entry points.
    "mod_test.ts": 'import "left-pad";',
  }, async (dir) => {
    const problems = await checkImports(dir);
    deepEqual(
      problems.map(({ module, line, specifier }) => `${module}:${line} ${specifier}`).sort(),
      [
        "_deps_loose.ts:1 npm:string-width@^8",
        "_deps_old_width.ts:1 npm:string-width@7.2.0",
        "_deps_width.ts:1 npm:string-width@8.3.0",
        "a.ts:2 npm:string-width@8.3.0",
        "a.ts:2 npm:string-width@8.3.0",
        "lazy.ts:1 https://example.com/x.ts",
        "mod.ts:2 left-pad",
      ],
    );
  }, "chat-imports-");
});
