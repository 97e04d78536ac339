/**
 * The interactive client: a full-screen chat with a line editor, run when
 * both standard input and output are a terminal.
 *
 * @module
 */

import type { ChatClient, ChatEvent, IncomingOffer } from "../client.ts";
import { awayNotice, reportedByCommand, runCommand } from "./_dispatch.ts";
import { onInterrupt } from "./_signals.ts";
import { type Command, COMMANDS, parseCommand } from "../protocol/commands.ts";
import { sanitize } from "../protocol/sanitize.ts";
import {
  type Entry,
  entryFor,
  entryForSent,
  entryForSentDm,
  formatBytes,
  notice,
} from "../tui/entries.ts";
import { KeyDecoder, type KeyEvent } from "../tui/keys.ts";
import { LineEditor } from "../tui/line_editor.ts";
import { composeFrame, entryHeight, paint } from "../tui/screen.ts";
import { createStyle } from "../tui/style.ts";
import { Terminal, terminalSize } from "../tui/terminal.ts";
import { graphemes } from "../tui/width.ts";
import { type Activity, Windows } from "../tui/windows.ts";
import { SmartFilter } from "../tui/smart_filter.ts";
import { IgnoreList } from "../tui/ignore.ts";
import { ignorePath } from "../_common/paths.ts";
import { ChatLog } from "../tui/chat_log.ts";

/** Options for {@linkcode runInteractive}. */
export interface InteractiveOptions {
  /** The server's address, for the status bar. */
  address: string;
  /** Whether to use colours. */
  color: boolean;
  /** How many colours the terminal shows. */
  colors?: 16 | 256;
  /** Whether to ring the bell on mentions and private messages. */
  bell: boolean;
  /** Where accepted files go. */
  downloads?: string;
  /** A folder to log every room and private conversation in, one file per day. */
  log?: string;
  /**
   * How the connection is secured: TLS with the certificate pinned by its
   * fingerprint, TLS verified by an authority, or none.
   */
  security?: "pinned" | "verified";
}

const RENDER_DELAY_MS = 16;
const ESCAPE_DELAY_MS = 50;
const COMMAND_NAMES = [...COMMANDS.map((command) => command.usage.split(" ")[0]!)];

/** Reads the ignore list from the config folder: empty when there is none, or when unreadable. */
async function loadIgnores(): Promise<{ list: IgnoreList; problem?: string }> {
  try {
    return { list: IgnoreList.parse(await Deno.readTextFile(ignorePath())) };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { list: new IgnoreList() };
    return {
      list: new IgnoreList(),
      problem: `Cannot read the ignore list: ${error instanceof Error ? error.message : error}`,
    };
  }
}

/** Keeps the ignore list in the config folder, replacing the file whole. */
async function saveIgnores(list: IgnoreList): Promise<void> {
  const path = ignorePath();
  const dir = path.slice(0, Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\")));
  await Deno.mkdir(dir, { recursive: true });
  const temporary = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.writeTextFile(temporary, list.format());
    await Deno.rename(temporary, path);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
}

/**
 * Runs the full-screen client until the user leaves or the server goes away.
 *
 * @param client The connected client.
 * @param options Address, colours and bell.
 * @returns The exit code: 0 when the user leaves (refusals were shown as they
 * came), 1 when the connection was lost.
 */
export async function runInteractive(
  client: ChatClient,
  options: InteractiveOptions,
): Promise<number> {
  const ignoring = await loadIgnores();
  const ignores = ignoring.list;
  const terminal = new Terminal();
  const style = createStyle(options.color, { colors: options.colors });
  const editor = new LineEditor();
  const decoder = new KeyDecoder();
  const members = new Map<string, Set<string>>([[client.room, new Set(client.members)]]);
  /** The user's name as the member lists know it. */
  let self = client.name;
  const windows = new Windows(() => ({
    prefix: "",
    prefixWidth: 0,
    body: "──── new messages ────",
    bodyStyle: style.dim,
  }));
  for (const room of client.joined) windows.open(room);
  windows.open(client.room, { focus: true });
  const filter = new SmartFilter();
  const chatLog = options.log === undefined ? undefined : new ChatLog(options.log, (error) => {
    output.error(`Cannot write the log in "${options.log}": ${error.message}`, false);
  });
  /** The user's away message, `""` when here. */
  let away = "";
  const inFlight = new Set<Promise<unknown>>();
  const finished = Promise.withResolvers<number>();
  let failed = false;
  let leaving = false;
  let renderTimer: ReturnType<typeof setTimeout> | undefined;
  let escapeTimer: ReturnType<typeof setTimeout> | undefined;
  let farewell = "Connection to the server was lost";
  let size = terminalSize();
  /** The room typed lines go to: the window's room, `""` in a private or empty window. */
  const currentRoom = () => {
    const target = windows.current.target;
    return target.startsWith("#") && client.joined.includes(target) ? target : "";
  };

  const secured = options.security === "pinned"
    ? " (TLS, pinned)"
    : options.security === "verified"
    ? " (TLS)"
    : "";
  const render = () => {
    clearTimeout(renderTimer);
    renderTimer = undefined;
    const window = windows.current;
    if (leaving && window.log.length === 0) return;
    const target = window.target;
    const prompt = target === "" ? "> " : `${sanitize(target)}> `;
    const where = target === ""
      ? "in no room (/join #ROOM)"
      : window.isPrivate
      ? "private"
      : client.joined.includes(target)
      ? `${members.get(target)?.size ?? 0} here`
      : "not in the room";
    const status =
      `${windows.bar()} · ${sanitize(client.name)}${
        away === "" ? "" : " (away)"
      } @ ${options.address}${secured} · ${where}` +
      (client.connected ? "" : " · reconnecting…") + transferStatus() + " · /help";
    const frame = composeFrame({
      columns: size.columns,
      rows: size.rows,
      log: window.log,
      scroll: window.scroll,
      status,
      // Windows with a mention stand out more than those with new messages.
      styleStatus: (text) =>
        text.replace(
          /(?<= )\d+:\S+[!+](?= |$)/g,
          (mark) => mark.endsWith("!") ? style.mention(mark) : style.bold(mark),
        ),
      input: editor.render(prompt, size.columns, {
        stylePrompt: style.bold,
        stylePlaceholder: style.inverse,
      }),
      style,
    });
    window.scroll = frame.scroll;
    terminal.write(paint(frame));
  };
  const transferStatus = () => {
    const first = transfers.values().next().value;
    if (first === undefined) return "";
    const fraction = first.total === 0 ? 1 : first.bytes / first.total;
    const seconds = (performance.now() - first.started) / 1000;
    const rate = seconds > 0 ? first.bytes / seconds : 0;
    const eta = rate > 0 ? Math.ceil((first.total - first.bytes) / rate) : 0;
    const bar = "#".repeat(Math.round(fraction * 10)).padEnd(10, ".");
    return ` · ${first.label} [${bar}] ${Math.floor(fraction * 100)}% ${
      formatBytes(rate)
    }/s ETA ${eta}s` +
      (transfers.size > 1 ? ` (+${transfers.size - 1})` : "");
  };
  const schedule = () => {
    renderTimer ??= setTimeout(render, RENDER_DELAY_MS);
  };
  /**
   * Adds an entry to the window of a room or a person, or to the window shown
   * (`undefined`).
   */
  const add = (entry: Entry, target?: string, activity: Activity = "none") => {
    const window = windows.add(target, entry, activity);
    if (window.scroll > 0) window.scroll += entryHeight(entry, size.columns);
    if (entry.mention && options.bell) terminal.write("\x07");
    schedule();
  };
  /** Shows another window, keeping the half-typed line of each. */
  const show = (change: () => unknown) => {
    const before = windows.current;
    before.draft = editor.text;
    before.draftCursor = editor.cursor;
    change();
    if (windows.current !== before) {
      editor.setText(windows.current.draft, windows.current.draftCursor);
    }
    schedule();
  };
  /** Where an event belongs, and how much it matters to a user looking elsewhere. */
  const place = (event: ChatEvent, entry: Entry): [string | undefined, Activity] => {
    switch (event.type) {
      case "message":
        return [
          event.room,
          entry.mention
            ? "mention"
            : event.history || event.from === client.name
            ? "none"
            : "messages",
        ];
      case "dm":
        return [event.from, "mention"];
      case "join":
      case "leave":
      case "topic":
        return [event.room, "none"];
      default:
        return [undefined, "none"];
    }
  };
  const showEvent = (event: ChatEvent) => {
    const entry = entryFor(event, context());
    if (entry === undefined) return;
    if (event.type === "nick") {
      // In every room the person shares with the user, and in their private window.
      windows.find(event.from)?.rename(event.to);
      let shown = false;
      for (const window of windows.list) {
        if (
          window.target === event.to ||
          members.get(window.target)?.has(event.to) === true
        ) {
          add(entry, window.target);
          shown = true;
        }
      }
      if (!shown) add(entry);
      return;
    }
    if (event.type === "away") {
      // In every room the person shares with the user, and in their private window.
      for (const window of windows.list) {
        if (window.target === event.name || members.get(window.target)?.has(event.name) === true) {
          add(entry, window.target);
        }
      }
      return;
    }
    const [target, activity] = place(event, entry);
    add(entry, target, activity);
  };
  const context = () => ({ self: client.name, style });
  const offers = new Map<string, IncomingOffer>();
  const transfers = new Map<
    string,
    { label: string; bytes: number; total: number; started: number }
  >();
  const output = {
    offers,
    downloads: options.downloads,
    progress: (id: string, label: string, bytes: number, total: number) => {
      const known = transfers.get(id);
      if (bytes >= total) transfers.delete(id);
      else transfers.set(id, { label, bytes, total, started: known?.started ?? performance.now() });
      schedule();
    },
    room: currentRoom,
    switchTo: (room: string) => {
      for (const known of members.keys()) if (!client.joined.includes(known)) members.delete(known);
      if (room !== "" && !members.has(room)) {
        members.set(room, new Set());
        client.who({ room }).then((names) => {
          members.set(room, new Set(names));
          schedule();
        }, () => {});
      }
      if (room !== "") show(() => windows.open(room, { focus: true }));
      schedule();
    },
    left: (room: string) => show(() => windows.close(room)),
    away: (message: string) => {
      away = message;
      schedule();
    },
    info: (text: string) => add(notice(style, text)),
    error: (text: string, requestFailed: boolean) => {
      if (requestFailed) failed = true;
      add(notice(style, text, "error"));
    },
    show: (event: ChatEvent) => {
      if (!ignores.hides(event)) showEvent(event);
    },
    sent: (sent: Parameters<typeof entryForSent>[0]) => {
      chatLog?.write({ type: "message", ...sent }, client.name);
      add(entryForSent(sent, context()), sent.room);
    },
    sentDm: (sent: Parameters<typeof entryForSentDm>[0]) => {
      chatLog?.write({ type: "dm", ...sent }, client.name);
      const entry = entryForSentDm(sent, context());
      // Kept with the conversation in its window (opened as irssi opens a query), and said
      // where it was typed.
      if (windows.open(sent.to) !== windows.current) add(entry, sent.to);
      add(entry);
    },
    clear: () => {
      windows.current.clear();
      schedule();
    },
  };
  /** Keeps the member lists right after the user's own rename. */
  const syncSelf = () => {
    if (client.name === self) return;
    for (const names of members.values()) if (names.delete(self)) names.add(client.name);
    self = client.name;
  };
  /** Everyone in the rooms the user is in, but the user. */
  const names = () => {
    syncSelf();
    const all = new Set<string>();
    for (const room of client.joined) for (const name of members.get(room) ?? []) all.add(name);
    all.delete(client.name);
    return [...all];
  };
  /** The ids of the offers waiting for an answer, as short as the offers show them. */
  const offerIds = () => {
    const ids = [...offers.keys()];
    return ids.map((id) => {
      const short = id.slice(0, 6);
      return ids.filter((other) => other.startsWith(short)).length === 1 ? short : id;
    });
  };
  const track = (request: Promise<unknown>) => {
    inFlight.add(request);
    request.finally(() => inFlight.delete(request));
  };

  const leave = async (reason?: string) => {
    if (leaving) return;
    leaving = true;
    add(notice(style, "Leaving…"));
    render();
    await Promise.all(inFlight);
    await client.close(reason === undefined ? {} : { reason });
    await chatLog?.flush();
    finished.resolve(0);
  };

  const fail = (what: string) => (error: unknown) =>
    output.error(`${what}: ${error instanceof Error ? sanitize(error.message) : error}`, false);
  /** Carries out what only windows give a meaning to; `false` for the other commands. */
  const windowCommand = (command: Command, unsent: () => void): boolean => {
    const window = windows.current;
    switch (command.kind) {
      case "window": {
        const index = command.index;
        if (index === undefined) {
          output.info(
            "Windows: " +
              windows.list.map((each, at) =>
                `${at + 1}:${each.target === "" ? "(no room)" : sanitize(each.target)}`
              ).join(" "),
          );
        } else if (index > windows.list.length) {
          output.error(`There is no window ${index}`, false);
        } else {
          show(() => windows.focusIndex(index - 1));
        }
        return true;
      }
      case "close":
        if (window.isPrivate) show(() => windows.close(window.target));
        else if (window.target === "") output.error("There is no window to close", false);
        else if (!client.joined.includes(window.target)) show(() => windows.close(window.target));
        else runCommand(client, { kind: "leave", room: window.target }, output, track);
        return true;
      case "ignore":
        if (command.name === undefined) {
          output.info(
            ignores.names.length === 0
              ? "You ignore nobody"
              : `You ignore ${ignores.names.map((name) => sanitize(name)).join(", ")}`,
          );
          return true;
        }
        switch (ignores.add(command.name)) {
          case "invalid":
            output.error(`"${sanitize(command.name)}" cannot be a name`, false);
            return true;
          case "full":
            output.error("You ignore too many people already; /unignore some first", false);
            return true;
          case "already":
            output.info(`You ignore ${sanitize(command.name)} already`);
            return true;
        }
        output.info(
          `Ignoring ${sanitize(command.name)}: /unignore ${sanitize(command.name)} to undo`,
        );
        track(saveIgnores(ignores).catch(fail("Cannot save the ignore list")));
        return true;
      case "unignore":
        if (!ignores.remove(command.name)) {
          output.error(`You do not ignore "${sanitize(command.name)}"`, false);
          return true;
        }
        output.info(`No longer ignoring ${sanitize(command.name)}`);
        track(saveIgnores(ignores).catch(fail("Cannot save the ignore list")));
        return true;
      case "set":
        if (command.name === undefined) {
          output.info(`smart_filter ${filter.enabled ? "on" : "off"}`);
        } else if (command.name !== "smart_filter") {
          output.error(
            `Unknown setting "${sanitize(command.name)}"; try /set smart_filter off`,
            false,
          );
        } else if (command.value === undefined) {
          output.info(`smart_filter ${filter.enabled ? "on" : "off"}`);
        } else if (command.value !== "on" && command.value !== "off") {
          output.error("Usage: /set smart_filter on|off", false);
        } else {
          filter.enabled = command.value === "on";
          output.info(
            filter.enabled
              ? "Joins, leaves and renames of people who have not spoken for 10 minutes are hidden"
              : "Every join, leave and rename is shown",
          );
        }
        return true;
      case "say":
      case "me": {
        if (!window.isPrivate) return false;
        const text = command.text;
        track(
          client.dm(window.target, text, { action: command.kind === "me" }).then(
            (sent) => {
              output.sentDm(sent);
              const notice = awayNotice(sent);
              if (notice !== undefined) output.info(notice);
            },
            (error) => {
              output.error(
                `Not sent: ${error instanceof Error ? sanitize(error.message) : String(error)}`,
                true,
              );
              unsent();
            },
          ),
        );
        return true;
      }
      default:
        return false;
    }
  };

  const key = (event: KeyEvent) => {
    if (event.type === "page-up" || event.type === "page-down") {
      const page = Math.max(size.rows - 3, 1);
      const window = windows.current;
      window.scroll = Math.max(window.scroll + (event.type === "page-up" ? page : -page), 0);
      return render();
    }
    // Alt-1…9 and Alt-0 (window 10); Alt-Left/Right and Ctrl-P/N: the window before, after.
    if (event.type === "alt" && /^[0-9]$/.test(event.key)) {
      return show(() => windows.focusIndex((Number(event.key) + 9) % 10));
    }
    if ((event.type === "left" || event.type === "right") && event.alt && !event.ctrl) {
      return show(() => windows.step(event.type === "left" ? -1 : 1));
    }
    if (event.type === "ctrl" && !event.alt && (event.key === "n" || event.key === "p")) {
      return show(() => windows.step(event.key === "n" ? 1 : -1));
    }
    const action = editor.handle(event);
    switch (action.type) {
      case "none":
        return;
      case "redraw":
        return render();
      case "clear-screen":
        terminal.write("\x1b[2J");
        return render();
      case "interrupt":
      case "eof":
        leave();
        return;
      case "complete": {
        const word = editor.wordAtCursor();
        const before = graphemes(editor.text).slice(0, word.start).join("");
        const candidates = word.start === 0 && word.text.startsWith("/")
          ? COMMAND_NAMES
          : /^\/(accept|decline|cancel)\s+$/i.test(before)
          ? offerIds()
          : word.text.startsWith("#")
          ? [...client.joined]
          : names();
        const completion = editor.complete(candidates);
        if (completion.matches.length > 1) {
          output.info(completion.matches.map((match) => sanitize(match)).join("  "));
        }
        return render();
      }
      case "submit": {
        windows.current.scroll = 0;
        if (action.text.trim() === "") return render();
        const typed = action.text;
        // A message that was not sent comes back to the input, to be edited and sent again.
        const unsent = () => {
          if (editor.text === "") {
            editor.setText(typed);
            output.info("Your message is back in the input: edit it and press Enter");
          } else {
            output.info("Your message is in the history: press Up to get it back");
          }
        };
        const command = parseCommand(typed);
        if (windowCommand(command, unsent)) return render();
        if (runCommand(client, command, { ...output, unsent }, track) === "quit") {
          leave(command.kind === "quit" ? command.reason : undefined);
        }
        return render();
      }
    }
  };

  terminal.enter();
  const stopSignals = onInterrupt(() => leave());
  const stopResize = terminal.onResize(() => {
    size = terminalSize();
    render();
  });
  try {
    const others = client.members.filter((member) => member !== client.name).map((name) =>
      sanitize(name)
    );
    output.info(
      `Connected to ${options.address} as ${sanitize(client.name)} in ${client.room}` +
        (others.length ? ` with ${others.join(", ")}` : "; nobody else is here yet") +
        ". Type /help for commands, Ctrl-C to leave.",
    );
    if (ignoring.problem !== undefined) output.error(ignoring.problem, false);
    render();
    (async () => {
      for await (const event of client) {
        syncSelf();
        if (event.type === "join") members.get(event.room)?.add(event.name);
        if (event.type === "leave") members.get(event.room)?.delete(event.name);
        if (event.type === "nick") {
          for (const names of members.values()) {
            if (names.delete(event.from)) names.add(event.to);
          }
        }
        if (event.type === "bye") farewell = sanitize(event.message);
        // Said again after the screen is gone, so it is not missed.
        if (event.type === "error" && event.code === "certificate_changed") {
          farewell = sanitize(event.message);
        }
        if (ignores.hides(event)) continue;
        chatLog?.write(event, client.name);
        if (event.type === "offer") offers.set(event.transfer, event);
        if (
          event.type === "transfer" && (event.state === "cancelled" || event.state === "expired")
        ) {
          offers.delete(event.transfer);
        }
        if (event.type === "reconnected") {
          // Who is here may have changed while we were away.
          for (const room of client.joined) {
            windows.open(room);
            client.who({ room }).then((names) => {
              members.set(room, new Set(names));
              schedule();
            }, () => {});
          }
        }
        if (reportedByCommand(event)) continue;
        const shown = filter.shows(event);
        filter.observe(event);
        if (shown) showEvent(event);
      }
      if (!leaving) {
        leaving = true;
        finished.resolve(-1);
      }
    })();
    (async () => {
      const buffer = new Uint8Array(4096);
      while (!leaving) {
        const read = await Deno.stdin.read(buffer);
        if (read === null) {
          leave();
          break;
        }
        clearTimeout(escapeTimer);
        for (const event of decoder.decode(buffer.subarray(0, read))) key(event);
        // A lone Esc may be the start of a sequence: wait a moment for the rest.
        if (decoder.pending) {
          escapeTimer = setTimeout(() => {
            for (const event of decoder.flush()) key(event);
          }, ESCAPE_DELAY_MS);
        }
      }
    })().catch((error) => {
      terminal.restore();
      throw error;
    });
    const code = await finished.promise;
    clearTimeout(renderTimer);
    terminal.restore();
    if (code === -1) {
      Deno.stderr.writeSync(new TextEncoder().encode(`*** ${farewell}\n`));
      return 1;
    }
    Deno.stdout.writeSync(
      new TextEncoder().encode(
        `*** You left ${options.address}${failed ? "; some messages were not accepted" : ""}\n`,
      ),
    );
    return code;
  } finally {
    stopResize();
    stopSignals();
    clearTimeout(renderTimer);
    clearTimeout(escapeTimer);
    terminal.restore();
  }
}
