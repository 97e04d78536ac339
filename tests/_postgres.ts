/**
 * A real PostgreSQL for the tests: `initdb` into a temporary folder (as the
 * `postgres` user when the tests run as root), `pg_ctl start` on a free
 * loopback port with its socket in that folder, one database, and all of it
 * removed at the end. Started once per test file.
 *
 * @module
 */

import { join } from "node:path";
import { freePort } from "./_helpers.ts";

/** Where Debian (or the PATH) keeps the PostgreSQL programs, if anywhere. */
function findBin(): string | undefined {
  const candidates: string[] = [];
  try {
    for (const entry of Deno.readDirSync("/usr/lib/postgresql")) {
      candidates.push(join("/usr/lib/postgresql", entry.name, "bin"));
    }
  } catch {
    // Not Debian's layout.
  }
  candidates.sort().reverse();
  for (const dir of candidates) {
    try {
      Deno.statSync(join(dir, "initdb"));
      Deno.statSync(join(dir, "pg_ctl"));
      return dir;
    } catch {
      // Not this one.
    }
  }
  return undefined;
}

/** The folder of the PostgreSQL programs, or `undefined` when they are not installed. */
export const PG_BIN: string | undefined = findBin();

/** Why PostgreSQL tests are skipped, for their names; `""` when they run. */
export const PG_MISSING: string = PG_BIN === undefined
  ? " (skipped: PostgreSQL is not installed; apt-get install postgresql)"
  : "";

const asRoot = (() => {
  try {
    return Deno.uid() === 0;
  } catch {
    return false;
  }
})();

async function run(program: string, args: string[], cwd?: string): Promise<string> {
  const command = asRoot
    ? new Deno.Command("runuser", { args: ["-u", "postgres", "--", program, ...args], cwd })
    : new Deno.Command(program, { args, cwd });
  const { code, stdout, stderr } = await command.output();
  const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  if (code !== 0) throw new Error(`"${program} ${args.join(" ")}" failed (${code}): ${text}`);
  return text;
}

/** A running PostgreSQL for tests. */
export interface TestPostgres extends AsyncDisposable {
  /** `postgres://postgres@127.0.0.1:PORT/chat`. */
  readonly url: string;
  /** The port it listens on. */
  readonly port: number;
  /** The temporary folder (the cluster's data is in `data/`). */
  readonly dir: string;
  /** Makes another empty database and returns its URL. */
  database(name: string): Promise<string>;
  /** Stops the server at once (connections are cut). */
  stop(): Promise<void>;
  /** Starts it again on the same port, with the same data. */
  start(): Promise<void>;
}

/**
 * Starts a PostgreSQL in a temporary folder.
 *
 * @returns The running server.
 * @throws {Error} When PostgreSQL is not installed or does not start.
 */
export async function startPostgres(): Promise<TestPostgres> {
  if (PG_BIN === undefined) throw new Error("PostgreSQL is not installed");
  const bin = PG_BIN;
  const dir = await Deno.makeTempDir({ prefix: "chat-pg-" });
  await Deno.chmod(dir, 0o755);
  const data = join(dir, "data");
  const sockets = join(dir, "sock");
  await Deno.mkdir(sockets);
  if (asRoot) {
    const chown = await new Deno.Command("chown", { args: ["-R", "postgres:", dir] }).output();
    if (chown.code !== 0) throw new Error(`Cannot give "${dir}" to the postgres user`);
  }
  const port = freePort();
  await run(join(bin, "initdb"), [
    "-D",
    data,
    "-A",
    "trust",
    "-U",
    "postgres",
    "--no-sync",
    "-E",
    "UTF8",
    "--locale=C",
  ], dir);
  const start = () =>
    run(join(bin, "pg_ctl"), [
      "-D",
      data,
      "-l",
      join(dir, "log"),
      "-w",
      "-t",
      "60",
      "-o",
      `-p ${port} -k ${sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200`,
      "start",
    ], dir);
  const stop = () => run(join(bin, "pg_ctl"), ["-D", data, "-m", "immediate", "-w", "stop"], dir);
  await start();
  const createdb = (name: string) =>
    run(join(bin, "createdb"), ["-h", sockets, "-p", `${port}`, "-U", "postgres", name], dir);
  await createdb("chat");
  let running = true;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/chat`,
    port,
    dir,
    async database(name: string): Promise<string> {
      await createdb(name);
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    async stop(): Promise<void> {
      await stop();
      running = false;
    },
    async start(): Promise<void> {
      await start();
      running = true;
    },
    async [Symbol.asyncDispose](): Promise<void> {
      try {
        if (running) await stop();
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  };
}
