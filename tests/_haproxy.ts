/**
 * Real HAProxy for the tests that put it in front of servers: where Debian
 * keeps it, and starting it on a configuration until it accepts connections.
 *
 * @module
 */

/** Where Debian keeps HAProxy, if it is installed. */
export const HAPROXY: string | undefined = ["/usr/sbin/haproxy", "/usr/bin/haproxy"].find(
  (path) => {
    try {
      return Deno.statSync(path).isFile;
    } catch {
      return false;
    }
  },
);

/** Why HAProxy tests are skipped, for their names; `""` when they run. */
export const HAPROXY_MISSING: string = HAPROXY === undefined
  ? " (skipped: HAProxy is not installed; apt-get install haproxy)"
  : "";

/**
 * Starts HAProxy on a configuration file and waits until it accepts
 * connections on `port` (15 s at most); disposing of it kills it.
 *
 * @param config The configuration file.
 * @param port The port its frontend listens on.
 * @returns The running HAProxy.
 */
export async function startHaproxy(config: string, port: number): Promise<AsyncDisposable> {
  const child = new Deno.Command(HAPROXY!, {
    args: ["-f", config, "-db"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Gone already.
    }
    await child.status;
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      break;
    } catch (error) {
      if (Date.now() > deadline) {
        await stop();
        throw new Error("HAProxy did not start", { cause: error });
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return { [Symbol.asyncDispose]: stop };
}
