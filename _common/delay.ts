/**
 * Waiting that an abort can cut short.
 *
 * @module
 */

/**
 * Resolves after `ms`, or rejects with the signal's reason as soon as it aborts.
 *
 * @param ms How long to wait, in ms.
 * @param signal Ends the wait early.
 * @returns A promise that resolves after the wait.
 */
export function delay(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", abort);
      resolve();
    }, ms);
    const abort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", abort, { once: true });
  });
}
