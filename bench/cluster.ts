/**
 * The cluster workload (`deno task bench --cluster`): the same burst on one
 * SQLite node, and on one, two and three nodes sharing a PostgreSQL started
 * for the run (Debian's `postgresql`). Clients speak raw JSON lines over
 * loopback, spread round robin over the nodes; every client is in the room
 * and sends its share as fast as acknowledgements come. Reports messages
 * stored per second, deliveries per second (messages × readers), and the CPU
 * per delivery of the nodes and of PostgreSQL, from `/proc`. A second run
 * spreads the same senders over eight rooms: writes to one room are
 * serialized by its counter row, so the difference is the per-room ceiling.
 *
 * @module
 */

import { join } from "node:path";
import { startPostgres, type TestPostgres } from "../tests/_postgres.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const encoder = new TextEncoder();

interface Sizes {
  clients: number;
  perClient: number;
}

interface Row {
  setup: string;
  rooms: number;
  messages: number;
  deliveries: number;
  seconds: number;
  messagesPerS: number;
  deliveriesPerS: number;
  nodeCpuUsPerDelivery: number;
  dbCpuUsPerDelivery: number;
}

let clockTicks = 100;

function cpuMs(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 1000 / clockTicks;
  } catch {
    return 0;
  }
}

/** The postmaster and its children. */
function postgresPids(dataDir: string): number[] {
  let master: number;
  try {
    master = Number(Deno.readTextFileSync(join(dataDir, "postmaster.pid")).split("\n")[0]);
  } catch {
    return [];
  }
  const pids = [master];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === master) pids.push(Number(entry.name));
    } catch {
      // Gone.
    }
  }
  return pids;
}

interface Node {
  child: Deno.ChildProcess;
  port: number;
}

async function startNode(data: string, name: string): Promise<Node> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-q",
      "-P=chat",
      "--no-prompt",
      join(ROOT, "main.ts"),
      "serve",
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--data",
      data,
      "--history",
      "0",
      "--rate-limit",
      "1000000",
      "--rate-burst",
      "1000000",
      "--max-presence",
      "1000",
      "--connect-rate",
      "1000",
      ...(data.startsWith("postgres") ? ["--node", name] : []),
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "null",
    env: { NO_COLOR: "1" },
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`Node ${name} did not start`);
    text += value;
    const port = /listening on 127\.0\.0\.1:(\d+)/.exec(text)?.[1];
    if (port !== undefined) {
      // Keep reading its log so it never blocks on a full pipe.
      (async () => {
        while (!(await reader.read()).done);
      })().catch(() => {});
      return { child, port: Number(port) };
    }
  }
}

/** A raw JSON-lines client: counts the room messages it receives. */
class Client {
  #conn: Deno.TcpConn;
  #buffer = "";
  received = 0;
  acked = 0;
  joined = 0;
  #waiters: (() => void)[] = [];
  #reading: Promise<void>;

  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    this.#reading = this.#read();
  }

  static async open(port: number, name: string): Promise<Client> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    const client = new Client(conn);
    await client.write({ type: "hello", id: 1, v: 1, name });
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      client.until(() => client.#welcomed),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`No welcome for ${name}`)), 20_000);
      }),
    ]).finally(() => clearTimeout(timer));
    return client;
  }

  #welcomed = false;

  async #read(): Promise<void> {
    const buffer = new Uint8Array(256 * 1024);
    const decoder = new TextDecoder();
    for (;;) {
      let n: number | null;
      try {
        n = await this.#conn.read(buffer);
      } catch {
        n = null;
      }
      if (n === null) break;
      this.#buffer += decoder.decode(buffer.subarray(0, n), { stream: true });
      let newline: number;
      while ((newline = this.#buffer.indexOf("\n")) >= 0) {
        const line = this.#buffer.slice(0, newline);
        this.#buffer = this.#buffer.slice(newline + 1);
        if (line.startsWith('{"type":"message"')) this.received++;
        else if (line.startsWith('{"type":"welcome"')) this.#welcomed = true;
        else if (line.startsWith('{"type":"ack"') && line.includes('"names"')) this.joined++;
        else if (line.startsWith('{"type":"ack"') && line.includes('"ts"')) this.acked++;
        else if (line.startsWith('{"type":"error"')) throw new Error(line);
      }
      for (const wake of this.#waiters.splice(0)) wake();
    }
    for (const wake of this.#waiters.splice(0)) wake();
  }

  async until(check: () => boolean): Promise<void> {
    while (!check()) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  async write(frame: unknown): Promise<void> {
    let bytes = encoder.encode(`${JSON.stringify(frame)}\n`);
    while (bytes.length > 0) bytes = bytes.subarray(await this.#conn.write(bytes));
  }

  async close(): Promise<void> {
    try {
      this.#conn.close();
    } catch {
      // Closed.
    }
    await this.#reading.catch(() => {});
  }
}

async function burst(
  setup: string,
  ports: number[],
  pids: () => { nodes: number[]; db: number[] },
  sizes: Sizes,
  roomCount: number,
): Promise<Row> {
  const clients: Client[] = [];
  for (let i = 0; i < sizes.clients; i++) {
    clients.push(await Client.open(ports[i % ports.length]!, `c${i}`));
  }
  const roomOf = (i: number) => roomCount === 1 ? "#lobby" : `#r${i % roomCount}`;
  if (roomCount > 1) {
    let id = 10;
    for (const [i, client] of clients.entries()) {
      await client.write({ type: "join", id: id++, room: roomOf(i), history: 0 });
    }
    // Everyone is in before anyone sends: a reader joining late would miss messages.
    await Promise.all(clients.map((client) => client.until(() => client.joined === 1)));
  }
  // Readers per message: everyone else in the room.
  const perRoom = new Map<string, number>();
  clients.forEach((_, i) => perRoom.set(roomOf(i), (perRoom.get(roomOf(i)) ?? 0) + 1));
  const expectReceived = (i: number) => (perRoom.get(roomOf(i))! - 1) * sizes.perClient;
  const { nodes, db } = pids();
  const cpu = (list: number[]) => list.reduce((sum, pid) => sum + cpuMs(pid), 0);
  const nodeCpu0 = cpu(nodes);
  const dbCpu0 = cpu(db);
  const start = performance.now();
  await Promise.all(clients.map(async (client, i) => {
    const room = roomOf(i);
    // A window of 50 unanswered sends per client.
    for (let sent = 0; sent < sizes.perClient; sent++) {
      if (sent - client.acked >= 50) await client.until(() => sent - client.acked < 50);
      await client.write({ type: "send", id: 100 + sent, room, text: `m${sent}` });
    }
  }));
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.all(
      clients.map((client, i) =>
        client.until(() => client.acked >= sizes.perClient && client.received >= expectReceived(i))
      ),
    ),
    new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${setup}, ${roomCount} rooms: timed out`)),
        120_000,
      );
    }),
  ]).finally(() => clearTimeout(timer));
  const seconds = (performance.now() - start) / 1000;
  const nodeCpu = cpu(nodes) - nodeCpu0;
  const dbCpu = cpu(db) - dbCpu0;
  for (const client of clients) await client.close();
  const messages = sizes.clients * sizes.perClient;
  const deliveries = clients.reduce((sum, _, i) => sum + expectReceived(i), 0);
  return {
    setup,
    rooms: roomCount,
    messages,
    deliveries,
    seconds: Math.round(seconds * 100) / 100,
    messagesPerS: Math.round(messages / seconds),
    deliveriesPerS: Math.round(deliveries / seconds),
    nodeCpuUsPerDelivery: Math.round(nodeCpu * 1000 / deliveries * 10) / 10,
    dbCpuUsPerDelivery: Math.round(dbCpu * 1000 / deliveries * 10) / 10,
  };
}

async function stop(nodes: Node[]): Promise<void> {
  for (const node of nodes) {
    try {
      node.child.kill("SIGTERM");
    } catch {
      // Gone.
    }
    await node.child.status;
  }
}

/**
 * Runs the cluster workload and writes `bench/results/cluster.md`.
 *
 * @param quick Smaller sizes.
 * @returns The exit code.
 */
export async function runCluster(quick = false): Promise<number> {
  const clk = await new Deno.Command("getconf", { args: ["CLK_TCK"] }).output();
  clockTicks = Number(new TextDecoder().decode(clk.stdout).trim()) || 100;
  const sizes: Sizes = quick ? { clients: 12, perClient: 100 } : { clients: 24, perClient: 1000 };
  let pg: TestPostgres;
  try {
    pg = await startPostgres();
  } catch (error) {
    console.error(
      `bench: Cannot start PostgreSQL: ${error instanceof Error ? error.message : error}`,
    );
    return 1;
  }
  const rows: Row[] = [];
  const dir = await Deno.makeTempDir({ prefix: "chat-bench-cluster-" });
  try {
    const dataDir = join(pg.dir, "data");
    const setups: [string, number][] = [["SQLite, 1 node", 1], ["PostgreSQL, 1 node", 1], [
      "PostgreSQL, 2 nodes",
      2,
    ], ["PostgreSQL, 3 nodes", 3]];
    let run = 0;
    for (const [setup, count] of setups) {
      for (const rooms of [1, 8]) {
        run++;
        const data = setup.startsWith("SQLite")
          ? join(dir, `run${run}.db`)
          : await pg.database(`bench${run}`);
        const nodes: Node[] = [];
        try {
          for (let i = 0; i < count; i++) nodes.push(await startNode(data, `n${i + 1}`));
          const row = await burst(
            setup,
            nodes.map((node) => node.port),
            () => ({
              nodes: nodes.map((node) => node.child.pid),
              db: setup.startsWith("SQLite") ? [] : postgresPids(dataDir),
            }),
            sizes,
            rooms,
          );
          rows.push(row);
          console.log(JSON.stringify(row));
        } catch (error) {
          console.error(`bench: ${error instanceof Error ? error.message : error}`);
        } finally {
          await stop(nodes);
        }
      }
    }
  } finally {
    await pg[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
  const lines = [
    `# Cluster workload (${new Date().toISOString().slice(0, 10)})`,
    "",
    `${sizes.clients} clients spread round robin over the nodes, ${sizes.perClient} messages each, ` +
    "at most 50 unanswered per client; loopback, this machine.",
    "",
    "| setup | rooms | messages | deliveries | s | messages/s | deliveries/s | node CPU µs/delivery | PostgreSQL CPU µs/delivery |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows.map((r) =>
      `| ${r.setup} | ${r.rooms} | ${r.messages} | ${r.deliveries} | ${r.seconds} | ${r.messagesPerS} | ${r.deliveriesPerS} | ${r.nodeCpuUsPerDelivery} | ${r.dbCpuUsPerDelivery} |`
    ),
    "",
  ];
  await Deno.writeTextFile(join(ROOT, "bench/results/cluster.md"), lines.join("\n"));
  console.log(lines.join("\n"));
  return 0;
}

if (import.meta.main) Deno.exit(await runCluster(Deno.args.includes("--quick")));
