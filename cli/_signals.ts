/**
 * Ctrl-C handling that works on every platform: SIGINT and SIGTERM on Unix,
 * SIGINT and SIGBREAK (Ctrl-Break) on Windows.
 *
 * @module
 */

/** The signals that ask this program to stop, on this platform. */
export const STOP_SIGNALS: Deno.Signal[] = Deno.build.os === "windows"
  ? ["SIGINT", "SIGBREAK"]
  : ["SIGINT", "SIGTERM"];

/**
 * Calls `handler` on the first stop signal; a second one exits at once with
 * code 130.
 *
 * @param handler What to do on the first signal.
 * @returns A function that removes the listeners.
 */
export function onInterrupt(handler: () => void): () => void {
  let seen = false;
  const listener = () => {
    if (seen) Deno.exit(130);
    seen = true;
    handler();
  };
  for (const signal of STOP_SIGNALS) Deno.addSignalListener(signal, listener);
  return () => {
    for (const signal of STOP_SIGNALS) Deno.removeSignalListener(signal, listener);
  };
}
