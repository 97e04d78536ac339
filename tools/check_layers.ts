/**
 * Checks the layers of the code: who may import whom, and that no import
 * goes round in a circle.
 *
 * ```sh
 * deno run --allow-read --allow-write --allow-run tools/check_layers.ts
 * ```
 *
 * It reads the module graph of every `.ts` file of the project with
 * `deno info --json` (static, dynamic and type-only imports alike; the
 * examples in doc comments are not imports) and reports, one line each:
 *
 * - an import that {@linkcode RULES} forbids, or of another folder's
 *   `_deps_*.ts` module (third-party code is wrapped once, for its folder);
 * - a module in no layer (a private module at the root, say);
 * - an import cycle among our modules, as the path round it.
 *
 * Data files (`deno.json` read for the version) are not modules and belong to
 * no layer. docs/ARCHITECTURE.md explains the layers.
 *
 * @module
 */

import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** What a layer may import: named layers, or anything. */
export type Allowed = readonly string[] | "anything";

/**
 * The layers and what each may import besides itself. A key ending in `/`
 * is a folder and holds every module below it; any other key is one file.
 */
export const RULES: Readonly<Record<string, Allowed>> = {
  // The wire format: frames, limits, codecs. Knows nothing else of ours.
  "protocol/": [],
  // Helpers both sides share (send queue, identity keys, TLS).
  "_common/": ["protocol/"],
  // Server internals: only the server door imports them.
  "_server/": ["_common/", "protocol/"],
  "server.ts": ["_server/", "_common/", "protocol/"],
  // Client internals: only the client door imports them.
  "_client/": ["_common/", "protocol/"],
  "client.ts": ["_client/", "_common/", "protocol/"],
  // Terminal widgets: draw the client's events, never reach up into the commands.
  "tui/": ["client.ts", "_common/", "protocol/"],
  // The commands, on top of everything public.
  "cli/": ["tui/", "server.ts", "client.ts", "mod.ts", "_common/", "protocol/"],
  "main.ts": ["cli/"],
  // The published doors: only other doors.
  "mod.ts": ["server.ts", "client.ts", "protocol/"],
  "testing.ts": ["mod.ts", "server.ts", "client.ts", "protocol/"],
  // Outside the package: anything, as long as it makes no cycle.
  "tests/": "anything",
  "tools/": "anything",
  "bench/": "anything",
};

/** An import that breaks the rules but is tolerated for now, and why. */
export interface AllowedImport {
  /** The importing module, relative to the root, with `/` separators. */
  from: string;
  /** The imported module, likewise. */
  to: string;
  /** Why it is tolerated, and what removes it. */
  why: string;
}

/**
 * Imports that break the rules today. Each is a debt: the check fails once
 * an entry no longer happens, so the list only shrinks.
 */
export const ALLOWED: readonly AllowedImport[] = [
  {
    from: "testing.ts",
    to: "_common/tls.ts",
    why: "test certificates should come from a door (server.ts) rather than a private module",
  },
];

/** Something wrong with the layers. */
export interface LayerProblem {
  /** The module at fault, relative to the root, with `/` separators. */
  module: string;
  /** The line of the import, from 1; `0` when no single line is at fault. */
  line: number;
  /** What is wrong. */
  message: string;
}

/** Options for {@linkcode checkLayers}. */
export interface CheckLayersOptions {
  /**
   * The layers and what each may import.
   *
   * @default {RULES}
   */
  rules?: Readonly<Record<string, Allowed>>;
  /**
   * Imports tolerated despite the rules.
   *
   * @default {[]}
   */
  allowed?: readonly AllowedImport[];
}

interface InfoResolution {
  specifier?: string;
  span?: { start: { line: number } };
}

interface InfoModule {
  specifier: string;
  dependencies?: { code?: InfoResolution; type?: InfoResolution }[];
}

/** An import between two of our modules. */
interface Edge {
  to: string;
  line: number;
}

/** Folders that hold no source of ours: built programs, benchmark figures, packages. */
const SKIPPED_DIRS = new Set(["dist", "bench/results", "node_modules"]);

/** Every `.ts` file under `root`, relative, with `/` separators, sorted. */
async function sourceFiles(root: string, dir = ""): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(join(root, dir))) {
    if (entry.name.startsWith(".")) continue;
    const path = dir === "" ? entry.name : `${dir}/${entry.name}`;
    if (entry.isDirectory) {
      if (!SKIPPED_DIRS.has(path) && entry.name !== "node_modules") {
        files.push(...await sourceFiles(root, path));
      }
    } else if (
      entry.isFile && /\.(ts|tsx|mts)$/.test(entry.name) && !entry.name.endsWith(".d.ts")
    ) {
      files.push(path);
    }
  }
  return files.sort();
}

/** The graph of our modules: each module and the modules it imports. */
async function moduleGraph(root: string, files: string[]): Promise<Map<string, Edge[]>> {
  // One `deno info` over a module that imports every file, rather than one per file.
  const dir = await Deno.makeTempDir({ prefix: "chat-layers-" });
  try {
    const all = join(dir, "all.ts");
    await Deno.writeTextFile(
      all,
      files.map((file) => `import ${JSON.stringify(pathToFileURL(join(root, file)).href)};\n`)
        .join(""),
    );
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", "--no-config", "--no-lock", "--no-npm", "--no-remote", all],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    if (code !== 0) {
      const reason = new TextDecoder().decode(stderr).trim().split("\n")[0];
      throw new Error(`Cannot read the module graph of "${root}": ${reason}`);
    }
    const modules: InfoModule[] = JSON.parse(new TextDecoder().decode(stdout)).modules;
    const ours = (specifier: string | undefined): string | undefined => {
      if (specifier === undefined || !specifier.startsWith("file:")) return undefined;
      const path = relative(root, fileURLToPath(specifier)).split(sep).join("/");
      return path.startsWith("../") || !/\.(ts|tsx|mts)$/.test(path) ? undefined : path;
    };
    const graph = new Map<string, Edge[]>();
    for (const module of modules) {
      const from = ours(module.specifier);
      if (from === undefined) continue;
      const edges = new Map<string, Edge>();
      for (const dependency of module.dependencies ?? []) {
        for (const resolved of [dependency.code, dependency.type]) {
          const to = ours(resolved?.specifier);
          if (to === undefined || edges.has(to)) continue;
          edges.set(to, { to, line: (resolved?.span?.start.line ?? -1) + 1 });
        }
      }
      graph.set(from, [...edges.values()].sort((a, b) => a.to < b.to ? -1 : 1));
    }
    return graph;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The layer a module belongs to: the longest key of `rules` that holds it. */
function layerOf(path: string, rules: Readonly<Record<string, Allowed>>): string | undefined {
  let best: string | undefined;
  for (const layer of Object.keys(rules)) {
    const holds = layer.endsWith("/") ? path.startsWith(layer) : path === layer;
    if (holds && (best === undefined || layer.length > best.length)) best = layer;
  }
  return best;
}

/** The strongly connected components of the graph (Tarjan), each sorted. */
function components(graph: Map<string, Edge[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (node: string): void => {
    index.set(node, index.size);
    low.set(node, index.get(node)!);
    stack.push(node);
    onStack.add(node);
    for (const { to } of graph.get(node) ?? []) {
      if (!index.has(to)) {
        visit(to);
        low.set(node, Math.min(low.get(node)!, low.get(to)!));
      } else if (onStack.has(to)) {
        low.set(node, Math.min(low.get(node)!, index.get(to)!));
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string | undefined;
      do {
        member = stack.pop();
        if (member === undefined) break;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      found.push(component.sort());
    }
  };
  for (const node of [...graph.keys()].sort()) if (!index.has(node)) visit(node);
  return found;
}

/** The shortest path from `start` back to itself within `members`. */
function cycleThrough(
  start: string,
  members: Set<string>,
  graph: Map<string, Edge[]>,
): string[] | undefined {
  const previous = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const node = queue[i];
    if (node === undefined) break;
    for (const { to } of graph.get(node) ?? []) {
      if (!members.has(to)) continue;
      if (to === start) {
        const path = [start];
        for (let at: string | undefined = node; at !== start && at !== undefined;) {
          path.unshift(at);
          at = previous.get(at);
        }
        return [start, ...path];
      }
      if (!previous.has(to)) {
        previous.set(to, node);
        queue.push(to);
      }
    }
  }
  return undefined;
}

/**
 * Checks every `.ts` module under `root` against the layer rules, and looks
 * for import cycles.
 *
 * @param root The project's directory.
 * @param options The rules and the tolerated imports.
 * @returns The problems, sorted by module; empty when all is well.
 * @throws {Error} When `deno info` cannot read the module graph.
 */
export async function checkLayers(
  root: string,
  options: CheckLayersOptions = {},
): Promise<LayerProblem[]> {
  const { rules = RULES, allowed = [] } = options;
  root = resolve(root);
  const graph = await moduleGraph(root, await sourceFiles(root));
  const problems: LayerProblem[] = [];
  const tolerated = new Set(allowed.map(({ from, to }) => `${from} -> ${to}`));
  const used = new Set<string>();
  for (const [from, edges] of graph) {
    const layer = layerOf(from, rules);
    if (layer === undefined) {
      problems.push({
        module: from,
        line: 0,
        message: "belongs to no layer: move it into a folder that says who owns it",
      });
    }
    const kept: Edge[] = [];
    for (const edge of edges) {
      const key = `${from} -> ${edge.to}`;
      if (tolerated.has(key)) {
        used.add(key);
        continue;
      }
      kept.push(edge);
      const may = layer === undefined ? "anything" : rules[layer] ?? [];
      // A module in no layer is reported once, as itself.
      if (may === "anything") continue;
      const target = layerOf(edge.to, rules);
      if (target !== undefined && target !== layer && !may.includes(target)) {
        problems.push({
          module: from,
          line: edge.line,
          message: `imports "${edge.to}", but ${layer} may import ${
            may.length === 0 ? "nothing else of ours" : `only ${may.join(", ")}`
          }`,
        });
        continue;
      }
      if (basename(edge.to).startsWith("_deps_") && dirname(edge.to) !== dirname(from)) {
        problems.push({
          module: from,
          line: edge.line,
          message: `imports "${edge.to}", which wraps third-party code for its own folder only`,
        });
      }
    }
    graph.set(from, kept);
  }
  for (const component of components(graph)) {
    const start = component[0];
    if (start === undefined) continue;
    const selfLoop = (graph.get(start) ?? []).some(({ to }) => to === start);
    if (component.length === 1 && !selfLoop) continue;
    const cycle = cycleThrough(start, new Set(component), graph) ?? component;
    problems.push({ module: start, line: 0, message: `import cycle: ${cycle.join(" -> ")}` });
  }
  for (const { from, to } of allowed) {
    if (!used.has(`${from} -> ${to}`)) {
      problems.push({
        module: from,
        line: 0,
        message: `no longer imports "${to}": remove it from the tolerated imports`,
      });
    }
  }
  return problems.sort((a, b) =>
    a.module === b.module ? a.line - b.line : a.module < b.module ? -1 : 1
  );
}

if (import.meta.main) {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const problems = await checkLayers(root, { allowed: ALLOWED });
  for (const { module, line, message } of problems) {
    console.error(`${line > 0 ? `${module}:${line}` : module}: ${message}`);
  }
  if (problems.length > 0) Deno.exit(1);
  console.log(`Every module keeps to its layer, and no import makes a cycle`);
}
