/**
 * Checks that the library resolves from any importer: by path, by URL or as
 * a JSR package, none of which sees this repository's `deno.json`.
 *
 * ```sh
 * deno run --allow-read --allow-run tools/check_imports.ts
 * ```
 *
 * For every module reachable from `main.ts` and the `exports` of `deno.json`
 * (static and dynamic imports alike), it checks that:
 *
 * - each specifier is relative, `node:`, `npm:` or `jsr:`: a bare one
 *   (`"string-width"`) resolves only through an import map;
 * - `npm:` and `jsr:` specifiers appear only in the `_deps_*.ts` modules,
 *   with an exact version (`npm:string-width@8.3.0`);
 * - each package is pinned at one version.
 *
 * Prints one line per problem and exits 1 if there is any.
 *
 * @module
 */

import { basename, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Something wrong with an import. */
export interface ImportProblem {
  /** The importing module, relative to the root. */
  module: string;
  /** The line of the import, from 1. */
  line: number;
  /** The specifier as written. */
  specifier: string;
  /** What is wrong. */
  message: string;
}

interface InfoDependency {
  specifier: string;
  code?: { span?: { start: { line: number } } };
  type?: { span?: { start: { line: number } } };
}

interface InfoModule {
  specifier: string;
  error?: string;
  dependencies?: InfoDependency[];
}

const PACKAGE = /^(npm|jsr):(@[^/@]+\/[^/@]+|[^/@]+)(?:@([^/]*))?(\/.*)?$/;
const EXACT_VERSION = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/;

/**
 * The entry points of a project: `main.ts` when present, and every path in
 * the `exports` of its `deno.json`.
 *
 * @param root The project's directory.
 * @returns The entry points, relative to `root`.
 */
export async function entryPoints(root: string): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(join(root, "deno.json")));
  const exports: unknown = config.exports;
  const entries = new Set<string>();
  try {
    await Deno.stat(join(root, "main.ts"));
    entries.add("./main.ts");
  } catch {
    // A library without a command.
  }
  if (typeof exports === "string") entries.add(exports);
  else if (exports !== null && typeof exports === "object") {
    for (const path of Object.values(exports)) if (typeof path === "string") entries.add(path);
  }
  return [...entries];
}

async function moduleGraph(root: string, entry: string): Promise<InfoModule[]> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    // As an importer sees it: no import map, nothing fetched.
    args: ["info", "--json", "--no-config", "--no-lock", "--no-npm", "--no-remote", entry],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  if (code !== 0) {
    const reason = new TextDecoder().decode(stderr).trim().split("\n")[0];
    throw new Error(`Cannot read the imports of "${entry}": ${reason}`);
  }
  return JSON.parse(new TextDecoder().decode(stdout)).modules;
}

function isTestModule(path: string): boolean {
  return path.endsWith("_test.ts") || path.split(/[\\/]/).includes("tests");
}

/**
 * Checks the imports of every module reachable from the entry points.
 *
 * @param root The project's directory.
 * @param entries The entry points, relative to `root`; by default
 * {@linkcode entryPoints}.
 * @returns The problems found, in module order; empty when all is well.
 */
export async function checkImports(root: string, entries?: string[]): Promise<ImportProblem[]> {
  root = resolve(root);
  entries ??= await entryPoints(root);
  const problems: ImportProblem[] = [];
  const seen = new Set<string>();
  const pins: { id: string; version: string; problem: ImportProblem }[] = [];
  for (const entry of entries) {
    for (const module of await moduleGraph(root, entry)) {
      if (!module.specifier.startsWith("file:") || seen.has(module.specifier)) continue;
      seen.add(module.specifier);
      const path = relative(root, fileURLToPath(module.specifier));
      if (isTestModule(path)) continue;
      if (module.error !== undefined) {
        problems.push({ module: path, line: 0, specifier: "", message: module.error });
        continue;
      }
      for (const dependency of module.dependencies ?? []) {
        const { specifier } = dependency;
        const span = dependency.code?.span ?? dependency.type?.span;
        const at = { module: path, line: (span?.start.line ?? -1) + 1, specifier };
        if (/^\.\.?\//.test(specifier) || specifier.startsWith("node:")) continue;
        const pkg = PACKAGE.exec(specifier);
        if (pkg === null) {
          problems.push({
            ...at,
            message: /^[a-z][a-z0-9+.-]*:/i.test(specifier)
              ? "only relative, node:, npm: and jsr: imports are allowed"
              : "a bare specifier resolves only through an import map, which importers do not see; " +
                'import "npm:NAME@VERSION" in a _deps_*.ts module instead',
          });
          continue;
        }
        if (!/^_deps_[a-z0-9_]+\.ts$/.test(basename(path))) {
          problems.push({
            ...at,
            message: "third-party code is imported only through a _deps_*.ts module",
          });
        }
        const [, registry, name, version] = pkg;
        if (version === undefined || !EXACT_VERSION.test(version)) {
          problems.push({ ...at, message: "a dependency must be pinned to an exact version" });
          continue;
        }
        pins.push({ id: `${registry}:${name}`, version, problem: { ...at, message: "" } });
      }
    }
  }
  for (const { id, problem } of pins) {
    const versions = [...new Set(pins.filter((pin) => pin.id === id).map((pin) => pin.version))];
    if (versions.length > 1) {
      problem.message = `"${id}" is pinned at several versions: ${
        versions.sort().map((version) => `"${version}"`).join(", ")
      }`;
      problems.push(problem);
    }
  }
  return problems;
}

if (import.meta.main) {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const problems = await checkImports(root);
  for (const { module, line, specifier, message } of problems) {
    const at = line > 0 ? `${module}:${line}` : module;
    console.error(specifier === "" ? `${at}: ${message}` : `${at}: "${specifier}": ${message}`);
  }
  if (problems.length > 0) Deno.exit(1);
  console.log(`Imports resolve from any importer (from ${(await entryPoints(root)).join(", ")})`);
}
