/**
 * A TCP proxy for tests: it forwards connections to a server and can cut
 * them from under the client, or refuse new ones for a while, the way a
 * network failure would.
 *
 * @module
 */

async function pump(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(16 * 1024);
  try {
    while (true) {
      const read = await from.read(buffer);
      if (read === null) break;
      let offset = 0;
      while (offset < read) offset += await to.write(buffer.subarray(offset, read));
    }
  } catch {
    // One side went away.
  }
}

function close(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

/** Forwards 127.0.0.1:`port` to a target port. */
export class Proxy implements AsyncDisposable {
  readonly port: number;
  #listener: Deno.Listener;
  /** The port connections are forwarded to (set it later when the server needs the proxy's). */
  target: number;
  #pairs = new Set<[Deno.Conn, Deno.Conn]>();
  #tasks = new Set<Promise<void>>();
  #accepting: Promise<void>;
  /** While `true`, new connections are closed at once. */
  refusing = false;
  /** How many connections were accepted and forwarded. */
  forwarded = 0;

  /**
   * Starts a proxy in front of a port.
   *
   * @param target The server's port on 127.0.0.1.
   */
  constructor(target: number) {
    this.target = target;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.#accepting = this.#accept();
  }

  async #accept(): Promise<void> {
    try {
      for await (const client of this.#listener) {
        if (this.refusing) {
          close(client);
          continue;
        }
        let server: Deno.Conn;
        try {
          server = await Deno.connect({ hostname: "127.0.0.1", port: this.target });
        } catch {
          close(client);
          continue;
        }
        this.forwarded++;
        const pair: [Deno.Conn, Deno.Conn] = [client, server];
        this.#pairs.add(pair);
        // When either side ends, end both, as a real connection would.
        const end = () => {
          close(client);
          close(server);
        };
        const task = Promise.all([pump(client, server).then(end), pump(server, client).then(end)])
          .then(() => {
            this.#pairs.delete(pair);
          });
        this.#tasks.add(task);
        task.finally(() => this.#tasks.delete(task));
      }
    } catch {
      // Listener closed.
    }
  }

  /** Cuts every forwarded connection, both ways, at once. */
  async cut(): Promise<void> {
    for (const [client, server] of this.#pairs) {
      close(client);
      close(server);
    }
    await Promise.all(this.#tasks);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    await this.cut();
  }
}
