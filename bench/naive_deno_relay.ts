/**
 * The naive Deno relay the benchmark compares against: a `for await` loop
 * over `conn.readable` per connection, lines split by hand, and one
 * `conn.write` per line per other client. Every line a client sends goes
 * to every other client unchanged.
 *
 * Writes to one client are chained so they stay in order and a partial
 * write is finished before the next line starts; nothing is coalesced.
 * Sockets keep the runtime's defaults (Nagle's algorithm on).
 *
 * @example Start it on port 7000
 * ```sh
 * deno run -A bench/naive_deno_relay.ts 7000
 * ```
 *
 * @module
 */

const port = Number(Deno.args[0] ?? "7000");
const NEWLINE = 0x0a;

interface Peer {
  conn: Deno.Conn;
  tail: Promise<void>;
  open: boolean;
}

const peers = new Set<Peer>();

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

function relay(from: Peer, line: Uint8Array): void {
  for (const peer of peers) {
    if (peer === from || !peer.open) continue;
    peer.tail = peer.tail.then(() => peer.open ? writeAll(peer.conn, line) : undefined).catch(
      () => {
        peer.open = false;
      },
    );
  }
}

async function handle(conn: Deno.Conn): Promise<void> {
  const peer: Peer = { conn, tail: Promise.resolve(), open: true };
  peers.add(peer);
  let pending = new Uint8Array(0);
  try {
    for await (const chunk of conn.readable) {
      let data = chunk;
      if (pending.length > 0) {
        data = new Uint8Array(pending.length + chunk.length);
        data.set(pending);
        data.set(chunk, pending.length);
      }
      let start = 0;
      let newline = data.indexOf(NEWLINE);
      while (newline !== -1) {
        relay(peer, data.slice(start, newline + 1));
        start = newline + 1;
        newline = data.indexOf(NEWLINE, start);
      }
      pending = data.slice(start);
    }
  } catch {
    // The connection broke.
  } finally {
    peers.delete(peer);
    peer.open = false;
    try {
      conn.close();
    } catch {
      // Already closed by the stream.
    }
  }
}

const listener = Deno.listen({ hostname: "127.0.0.1", port });
console.log(`listening on ${(listener.addr as Deno.NetAddr).port}`);
for await (const conn of listener) handle(conn);
