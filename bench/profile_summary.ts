/**
 * Summarises a V8 `.cpuprofile` (from `deno run --cpu-prof`): the functions
 * with the most self time, and the share of time spent idle, in GC and in
 * native code.
 *
 * @example Profile the server during a burst and summarise it
 * ```sh
 * deno run --cpu-prof --cpu-prof-dir=/tmp/prof -P=chat main.ts serve --port 7777
 * deno run -A bench/profile_summary.ts /tmp/prof
 * ```
 *
 * @module
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** One function's share of a profile. */
export interface Row {
  /** Function name, file and line. */
  name: string;
  /** Self time in milliseconds. */
  selfMs: number;
  /** Self time as a share of the samples that were not idle. */
  share: number;
}

function label(frame: CallFrame, root: string): string {
  const name = frame.functionName || "(anonymous)";
  if (!frame.url) return name;
  let file = frame.url.replace(/^file:\/\//, "");
  if (root && file.startsWith(root)) file = file.slice(root.length);
  file = file.replace(/^ext:/, "ext:");
  return `${name} ${file}:${frame.lineNumber + 1}`;
}

/**
 * Sums self time per function over one or more profiles.
 *
 * @param profiles The parsed profiles.
 * @param root A path prefix to strip from file names.
 * @returns The rows, most self time first, and the idle and total times.
 */
export function summarise(
  profiles: Profile[],
  root = "",
): { rows: Row[]; busyMs: number; idleMs: number } {
  const self = new Map<string, number>();
  let idleMs = 0;
  let busyMs = 0;
  for (const profile of profiles) {
    const byId = new Map(profile.nodes.map((node) => [node.id, node]));
    const samples = profile.samples ?? [];
    const deltas = profile.timeDeltas ?? [];
    for (let i = 0; i < samples.length; i++) {
      const node = byId.get(samples[i]!);
      if (!node) continue;
      // A sample's time is the delta to the next sample.
      const ms = (deltas[i + 1] ?? 0) / 1000;
      const name = label(node.callFrame, root);
      if (node.callFrame.functionName === "(idle)") {
        idleMs += ms;
        continue;
      }
      busyMs += ms;
      self.set(name, (self.get(name) ?? 0) + ms);
    }
  }
  const rows = [...self.entries()]
    .map(([name, selfMs]) => ({ name, selfMs, share: busyMs > 0 ? selfMs / busyMs : 0 }))
    .sort((a, b) => b.selfMs - a.selfMs);
  return { rows, busyMs, idleMs };
}

/** The `.cpuprofile` files at `path`, searching folders recursively. */
async function profilesIn(path: string): Promise<string[]> {
  const info = await Deno.stat(path);
  if (!info.isDirectory) return [path];
  const files: string[] = [];
  for await (const entry of Deno.readDir(path)) {
    const inner = `${path}/${entry.name}`;
    if (entry.isDirectory) files.push(...await profilesIn(inner));
    else if (entry.isFile && entry.name.endsWith(".cpuprofile")) files.push(inner);
  }
  return files.sort();
}

if (import.meta.main) {
  const [path, topText] = Deno.args;
  if (path === undefined) {
    console.error("Usage: deno run -A bench/profile_summary.ts FILE.cpuprofile|DIR [TOP]");
    Deno.exit(2);
  }
  const files = await profilesIn(path);
  if (files.length === 0) {
    console.error(`No .cpuprofile files in "${path}"`);
    Deno.exit(1);
  }
  const profiles = await Promise.all(
    files.map(async (file) => JSON.parse(await Deno.readTextFile(file)) as Profile),
  );
  const root = new URL("..", import.meta.url).pathname;
  const { rows, busyMs, idleMs } = summarise(profiles, root);
  const top = Number(topText ?? "25");
  console.log(
    `${files.length} profile(s): ${busyMs.toFixed(0)} ms busy, ${idleMs.toFixed(0)} ms idle`,
  );
  console.log("self ms   share  function");
  for (const row of rows.slice(0, top)) {
    console.log(
      `${row.selfMs.toFixed(1).padStart(8)}  ${
        (row.share * 100).toFixed(1).padStart(5)
      }%  ${row.name}`,
    );
  }
}
