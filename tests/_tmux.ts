/**
 * Drives a program in a real pseudo-terminal through tmux, the way a person
 * types into it, and reads the screen back.
 *
 * @module
 */

/** Whether tmux is installed (the terminal tests skip themselves without it). */
export const HAS_TMUX: boolean = (() => {
  if (Deno.build.os === "windows") return false;
  try {
    return new Deno.Command("tmux", { args: ["-V"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
})();

async function tmux(socket: string, ...args: string[]): Promise<string> {
  const output = await new Deno.Command("tmux", {
    args: ["-L", socket, ...args],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!output.success) {
    throw new Error(`tmux ${args[0]} failed: ${new TextDecoder().decode(output.stderr).trim()}`);
  }
  return new TextDecoder().decode(output.stdout);
}

/** One tmux session on a private server socket, killed on dispose. */
export class TmuxSession implements AsyncDisposable {
  readonly socket: string;

  private constructor(socket: string) {
    this.socket = socket;
  }

  /**
   * Starts a shell command in a new detached session of the given size.
   *
   * @param command The shell command.
   * @param size Columns and rows.
   * @returns The session.
   */
  static async start(
    command: string,
    size: { columns: number; rows: number },
  ): Promise<TmuxSession> {
    const socket = `chat-test-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
    await tmux(
      socket,
      "new-session",
      "-d",
      "-x",
      String(size.columns),
      "-y",
      String(size.rows),
      command,
    );
    return new TmuxSession(socket);
  }

  /** Runs any tmux command on this session's server and returns what it printed. */
  async run(...args: string[]): Promise<string> {
    return await tmux(this.socket, ...args);
  }

  /** Types text literally (no key names). */
  async type(text: string): Promise<void> {
    await tmux(this.socket, "send-keys", "-l", text);
  }

  /** Presses keys by tmux name (`Enter`, `C-c`, `Left`). */
  async press(...keys: string[]): Promise<void> {
    await tmux(this.socket, "send-keys", ...keys);
  }

  /** Resizes the window, as a person dragging the terminal's edge would. */
  async resize(columns: number, rows: number): Promise<void> {
    await tmux(this.socket, "resize-window", "-x", String(columns), "-y", String(rows));
  }

  /** The visible screen, one string per row. */
  async screen(): Promise<string[]> {
    return (await tmux(this.socket, "capture-pane", "-p")).split("\n");
  }

  /**
   * Waits until the screen matches, polling the pane; throws with the last
   * screen after `timeout` ms.
   */
  async waitFor(pattern: RegExp, timeout = 10_000): Promise<string[]> {
    const deadline = Date.now() + timeout;
    while (true) {
      const screen = await this.screen();
      if (pattern.test(screen.join("\n"))) return screen;
      if (Date.now() > deadline) {
        throw new Error(`Timed out waiting for ${pattern} on the screen:\n${screen.join("\n")}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await tmux(this.socket, "kill-server");
    } catch {
      // Already gone.
    }
  }
}

/** Quotes `text` as one word for a POSIX shell. */
export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}
