/**
 * The real terminal: raw mode, the alternate screen, bracketed paste, size
 * and resizes, and a restore that always runs (on exit, on Ctrl-C, on a
 * crash). Only APIs that exist on Linux, macOS and Windows.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Enter the alternate screen, turn on bracketed paste, clear. */
const ENTER = "\x1b[?1049h\x1b[?2004h\x1b[H\x1b[2J";
/** Turn off bracketed paste, reset styles, show the cursor, leave the alternate screen. */
const LEAVE = "\x1b[?2004l\x1b[0m\x1b[?25h\x1b[?1049l";
const RESIZE_POLL_MS = 250;

/** The terminal's size in character cells. */
export interface Size {
  columns: number;
  rows: number;
}

/**
 * Reads the terminal size; falls back to 80×24 when it cannot be read.
 *
 * @returns The size.
 */
export function terminalSize(): Size {
  try {
    const { columns, rows } = Deno.consoleSize();
    if (columns > 0 && rows > 0) return { columns, rows };
  } catch {
    // Not a terminal, or not supported.
  }
  return { columns: 80, rows: 24 };
}

/** The interactive terminal. */
export class Terminal {
  #active = false;
  #restore = () => this.restore();

  /** Switches to raw mode and the alternate screen. */
  enter(): void {
    Deno.stdin.setRaw(true);
    this.#active = true;
    this.write(ENTER);
    globalThis.addEventListener("unload", this.#restore);
    globalThis.addEventListener("error", this.#restore);
    globalThis.addEventListener("unhandledrejection", this.#restore);
  }

  /** Puts the terminal back as it was. Safe to call more than once. */
  restore(): void {
    if (!this.#active) return;
    this.#active = false;
    globalThis.removeEventListener("unload", this.#restore);
    globalThis.removeEventListener("error", this.#restore);
    globalThis.removeEventListener("unhandledrejection", this.#restore);
    try {
      this.write(LEAVE);
    } catch {
      // The terminal is gone.
    }
    try {
      Deno.stdin.setRaw(false);
    } catch {
      // The terminal is gone.
    }
  }

  /**
   * Writes text at once (synchronously, so output is never torn by exit).
   *
   * @param text The text and escape sequences.
   */
  write(text: string): void {
    const bytes = encoder.encode(text);
    let offset = 0;
    while (offset < bytes.length) offset += Deno.stdout.writeSync(bytes.subarray(offset));
  }

  /**
   * Calls `listener` when the window changes size: on SIGWINCH where it
   * exists, by polling on Windows.
   *
   * @param listener Called after a resize.
   * @returns A function that stops listening.
   */
  onResize(listener: () => void): () => void {
    if (Deno.build.os !== "windows") {
      Deno.addSignalListener("SIGWINCH", listener);
      return () => Deno.removeSignalListener("SIGWINCH", listener);
    }
    let last = terminalSize();
    const timer = setInterval(() => {
      const size = terminalSize();
      if (size.columns !== last.columns || size.rows !== last.rows) {
        last = size;
        listener();
      }
    }, RESIZE_POLL_MS);
    return () => clearInterval(timer);
  }
}
