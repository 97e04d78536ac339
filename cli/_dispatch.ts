/**
 * Carries out a typed command with the client library. Shared by the line
 * client and the full-screen client, which differ only in how they show the
 * results.
 *
 * @module
 */

import type { ChatClient, ChatEvent, IncomingOffer, SentDm, SentMessage } from "../client.ts";
import { formatBytes } from "../tui/entries.ts";
import { type Command, helpLines } from "../protocol/commands.ts";
import { sanitize } from "../protocol/sanitize.ts";
import { shortFingerprint } from "../protocol/fingerprint.ts";

/** Where the results of commands go. */
export interface CommandOutput {
  /** A notice (`***`). */
  info(text: string): void;
  /** A failure (`!`). Sets the exit code to 1 for requests that failed. */
  error(text: string, requestFailed: boolean): void;
  /** A room message the server accepted. */
  sent(message: SentMessage): void;
  /** A private message the server delivered. */
  sentDm(message: SentDm): void;
  /** `/clear`. */
  clear(): void;
  /** The room typed lines go to; `""` when the user is in no room. */
  room(): string;
  /** Makes another joined room the one typed lines go to (`""`: none). */
  switchTo(room: string): void;
  /** The file offers received and not answered yet, by transfer id. */
  offers: Map<string, IncomingOffer>;
  /** Where accepted files go. */
  downloads: string | undefined;
  /** Reports a transfer's progress (`bytes === total` when done). */
  progress(id: string, label: string, bytes: number, total: number): void;
  /** A typed message was not sent (refused, or no room to send it to). */
  unsent?(): void;
  /** Shows an event as if it had arrived (for `/history`). */
  show(event: ChatEvent): void;
  /** The user left a room (the full-screen client closes its window). */
  left?(room: string): void;
  /** The user is away with this message now, or back (`""`). */
  away?(message: string): void;
}

/**
 * What the client says after a private message to someone away, as IRC's
 * automatic reply.
 *
 * @param sent The private message as delivered.
 * @returns The notice, or `undefined` when the recipient is not away.
 */
export function awayNotice(sent: SentDm): string | undefined {
  return sent.away ? `${sanitize(sent.to)} is away: ${sanitize(sent.away)}` : undefined;
}

/** Finds an offer or a transfer by the start of its id, as shown to people. */
function byPrefix<T>(map: Map<string, T>, id: string): [string, T] | undefined {
  const found = [...map].filter(([key]) => key.startsWith(id));
  return found.length === 1 ? found[0] : undefined;
}

/** The transfers this process is running, by id, so `/cancel` can find them. */
const running = new Map<string, string>();
/** The last search, so `/find` alone shows the next, older page. */
let lastFind: { room: string; text: string; next?: number } | undefined;
/** Most requests one `/find` makes while pages come back empty (each reads a stretch of history). */
const FIND_REQUESTS = 5;
/** Messages shown per `/find`. */
const FIND_PAGE = 20;

/** Files this process offers to one person: the `/send` that offered each reports how it ended. */
const direct = new Set<string>();

/**
 * Tells whether an event is the end of a file offered to one person with
 * `/send`, whose outcome that command reports itself, so it is not shown twice.
 *
 * @param event The event.
 * @returns Whether to leave the event out.
 */
export function reportedByCommand(event: ChatEvent): boolean {
  if (event.type !== "transfer" || !direct.has(event.transfer)) return false;
  if (event.state === "accepted") return false;
  direct.delete(event.transfer);
  return true;
}

/**
 * Runs one command. Requests run in the background; their promises are given
 * to `track` so the caller can wait for them before leaving.
 *
 * @param client The connected client.
 * @param command The parsed command.
 * @param output Where results go.
 * @param track Receives each request in flight.
 * @returns `"quit"` when the user asked to leave.
 */
export function runCommand(
  client: ChatClient,
  command: Command,
  output: CommandOutput,
  track: (request: Promise<unknown>) => void,
): "quit" | undefined {
  const fail = (what: string) => (error: unknown) => {
    output.error(
      `${what}: ${error instanceof Error ? sanitize(error.message) : String(error)}`,
      true,
    );
  };
  const unsent = (error: unknown) => {
    fail("Not sent")(error);
    output.unsent?.();
  };
  switch (command.kind) {
    case "say":
    case "me":
      if (output.room() === "") {
        output.error("Not sent: you are in no room; /join one first", false);
        output.unsent?.();
        return;
      }
      track(
        client.send(command.text, { room: output.room(), action: command.kind === "me" }).then(
          (sent) => output.sent(sent),
          unsent,
        ),
      );
      return;
    case "join":
      track(
        client.join(command.room).then((joined) => {
          output.switchTo(joined.room);
          // The others, as the welcome line says it: you are not with yourself.
          const others = joined.members.filter((name) => name !== client.name);
          output.info(
            `You are in ${joined.room}${
              joined.topic ? ` (topic: ${sanitize(joined.topic)})` : ""
            } ${
              joined.count - 1 > others.length
                ? `with ${joined.count - 1} others (too many to list)`
                : others.length === 0
                ? "alone for now"
                : `with ${others.map((name) => sanitize(name)).join(", ")}`
            }`,
          );
        }, fail("Cannot join")),
      );
      return;
    case "leave": {
      const room = command.room ?? output.room();
      track(
        client.leave(room, command.reason === undefined ? {} : { reason: command.reason }).then(
          () => {
            if (output.left !== undefined) output.left(room);
            else if (output.room() === room) output.switchTo(client.joined[0] ?? "");
            output.info(`You left ${room}`);
          },
          fail("Cannot leave"),
        ),
      );
      return;
    }
    case "switch":
      if (!client.joined.includes(command.room)) {
        output.error(`You are not in "${sanitize(command.room)}"; /join it first`, false);
      } else {
        output.switchTo(command.room);
        output.info(`Now typing into ${command.room}`);
      }
      return;
    case "rooms":
      track(
        client.rooms().then(
          (rooms) =>
            output.info(
              "Rooms: " +
                rooms.map((room) =>
                  `${room.name} (${room.members})${room.topic ? ` ${sanitize(room.topic)}` : ""}`
                ).join(", "),
            ),
          fail("Cannot list the rooms"),
        ),
      );
      return;
    case "topic": {
      const room = output.room();
      if (room === "") return void output.error("You are in no room; /join one first", false);
      track(
        client.topic(room, command.text).then(
          (topic) => output.info(`Topic of ${room}: ${topic ? sanitize(topic) : "(none)"}`),
          fail("Cannot set the topic"),
        ),
      );
      return;
    }
    case "msg":
      track(
        client.dm(command.to, command.text).then((sent) => {
          output.sentDm(sent);
          const away = awayNotice(sent);
          if (away !== undefined) output.info(away);
        }, fail("Not sent")),
      );
      return;
    case "away":
      track(
        client.away(command.message).then((message) => {
          output.info(message === "" ? "You are back" : `You are away: ${sanitize(message)}`);
          output.away?.(message);
        }, fail("Cannot set away")),
      );
      return;
    case "nick":
      track(
        client.nick(command.name).then(
          (name) => output.info(`You are now known as ${sanitize(name)}`),
          fail("Cannot rename"),
        ),
      );
      return;
    case "who":
      if ((command.room ?? output.room()) === "") {
        return void output.error("You are in no room; /join one first", false);
      }
      track(
        client.roster({ room: command.room ?? output.room() }).then(
          (roster) =>
            output.info(
              `In ${command.room ?? output.room()}: ${
                roster.names.map((name) =>
                  (roster.ops.includes(name) ? "@" : "") + sanitize(name) +
                  (Object.hasOwn(roster.away, name)
                    ? ` (away: ${sanitize(roster.away[name]!)})`
                    : "")
                ).join(", ")
              }`,
            ),
          fail("Cannot list the room"),
        ),
      );
      return;
    case "whois":
      track(
        client.whois(command.name).then(
          (who) =>
            output.info(
              `${sanitize(who.name)} is ${who.online ? "online" : "offline"}${
                who.op ? ", an operator" : ""
              }${who.away ? `, away: ${sanitize(who.away)}` : ""}; ` +
                (who.fingerprint
                  ? `key ${sanitize(who.fingerprint)}${
                    shortFingerprint(who.fingerprint) === undefined
                      ? ""
                      : ` (${shortFingerprint(who.fingerprint)})`
                  }`
                  : "no key (anyone may use this name)"),
            ),
          fail("Cannot look up"),
        ),
      );
      return;
    case "kick":
      track(
        client.kick(command.name, command.reason, command.room ? { room: command.room } : {})
          .catch(fail("Cannot kick")),
      );
      return;
    case "ban":
      track(
        client.ban(command.target, { duration: command.duration, reason: command.reason }).then(
          () => output.info(`Banned ${sanitize(command.target)}`),
          fail("Cannot ban"),
        ),
      );
      return;
    case "unban":
      track(
        client.unban(command.target).then(
          () => output.info(`Unbanned ${sanitize(command.target)}`),
          fail("Cannot unban"),
        ),
      );
      return;
    case "mute":
      track(
        client.mute(command.name, { duration: command.duration, reason: command.reason }).then(
          () =>
            output.info(
              `${command.duration === 0 ? "Unmuted" : "Muted"} ${sanitize(command.name)}`,
            ),
          fail("Cannot mute"),
        ),
      );
      return;
    case "send": {
      let id = "";
      // Not tracked: leaving cancels a transfer rather than waiting for it.
      void (
        client.sendFile(command.to, command.path, {
          onOffer: (transfer) => {
            id = transfer;
            running.set(id, command.path);
            if (!command.to.startsWith("#")) direct.add(id);
            output.info(
              `Offered ${sanitize(command.path)} to ${sanitize(command.to)} (id ${
                id.slice(0, 6)
              }); waiting…`,
            );
          },
          onProgress: (bytes, total, to) => output.progress(id, `→ ${sanitize(to)}`, bytes, total),
        }).then(
          (sent) =>
            output.info(
              `Sent ${sanitize(command.path)} (${formatBytes(sent.size)}) to ${
                sent.to.map((n) => sanitize(n)).join(", ")
              }`,
            ),
          fail("File not sent"),
        ).finally(() => running.delete(id))
      );
      return;
    }
    case "accept": {
      const found = byPrefix(output.offers, command.id);
      if (found === undefined) {
        output.error(`No file offer "${sanitize(command.id)}"; offers show their id`, false);
        return;
      }
      const [id, offer] = found;
      output.offers.delete(id);
      running.set(id, offer.name);
      void (
        offer.accept({
          dir: command.dir ?? output.downloads,
          onProgress: (bytes, total) =>
            output.progress(id, `← ${sanitize(offer.name)}`, bytes, total),
        }).then(
          (file) =>
            output.info(
              `Saved ${sanitize(file.path)} (${formatBytes(file.size)}; SHA-256 ${
                file.sha256.slice(0, 16)
              }… matched)`,
            ),
          fail("File not received"),
        ).finally(() => running.delete(id))
      );
      return;
    }
    case "decline": {
      const found = byPrefix(output.offers, command.id);
      if (found === undefined) {
        output.error(`No file offer "${sanitize(command.id)}"`, false);
        return;
      }
      output.offers.delete(found[0]);
      track(
        found[1].decline().then(
          () => output.info(`Declined "${sanitize(found[1].name)}"`),
          fail("Cannot decline"),
        ),
      );
      return;
    }
    case "cancel": {
      const found = byPrefix(running, command.id) ?? byPrefix(output.offers, command.id);
      if (found === undefined) {
        output.error(`No transfer "${sanitize(command.id)}"`, false);
        return;
      }
      track(client.cancelTransfer(found[0]).catch(fail("Cannot cancel")));
      return;
    }
    case "help":
      for (const line of helpLines()) output.info(line);
      return;
    case "history": {
      const room = command.room ?? output.room();
      track(
        client.history(room, { limit: command.count ?? 50 }).then(
          (messages) => {
            if (messages.length === 0) output.info(`No messages in ${room}`);
            for (const message of messages) output.show(message);
          },
          (error: Error) => output.error(error.message, true),
        ),
      );
      return;
    }
    case "clear":
      output.clear();
      return;
    case "find": {
      let search: { room: string; text: string; next?: number };
      if (command.text !== undefined) {
        const room = output.room();
        if (room === "") {
          return void output.error("Search in a room: /find works in its window", false);
        }
        search = { room, text: command.text };
      } else if (lastFind?.next !== undefined) {
        search = lastFind;
      } else {
        return void output.error(
          lastFind === undefined ? "Usage: /find TEXT" : "Nothing older to find",
          false,
        );
      }
      track(
        (async () => {
          let page = await client.search(search.text, {
            room: search.room,
            before: search.next,
            limit: FIND_PAGE,
          });
          for (let i = 1; i < FIND_REQUESTS && page.messages.length === 0 && page.next; i++) {
            page = await client.search(search.text, {
              room: search.room,
              before: page.next,
              limit: FIND_PAGE,
            });
          }
          lastFind = { room: search.room, text: search.text, next: page.next };
          const what = `"${sanitize(search.text)}" in ${search.room}`;
          if (page.messages.length === 0) {
            output.info(
              `Nothing ${search.next === undefined ? "" : "older "}found for ${what}` +
                (page.next === undefined ? "" : "; /find looks further back"),
            );
            return;
          }
          output.info(
            `Found ${page.messages.length} for ${what}${
              search.next === undefined ? "" : " (older)"
            }:`,
          );
          for (const message of page.messages) output.show(message);
          if (page.next !== undefined) output.info("/find shows older ones");
        })().catch(fail("Cannot search")),
      );
      return;
    }
    case "window":
    case "close":
    case "set":
    case "ignore":
    case "unignore":
      output.error(`/${command.kind} works in the full-screen client only`, false);
      return;
    case "usage":
      output.error(command.message, false);
      return;
    case "unknown":
      output.error(`Unknown command "/${sanitize(command.name)}"; type /help for the list`, false);
      return;
    case "quit":
      return "quit";
  }
}
