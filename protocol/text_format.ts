/**
 * Renders events as plain, readable lines: for people on `nc` or telnet, and
 * for the line-based client. Everything from the network is sanitised, so no
 * name or message can control the reader's terminal.
 *
 * @module
 */

import type { ServerFrame } from "./frames.ts";
import { LOBBY } from "./limits.ts";
import { sanitize } from "./sanitize.ts";
import { shortFingerprint } from "./fingerprint.ts";

const LEAVE_REASONS: Record<string, string> = {
  quit: "quit",
  lost: "connection lost",
  part: "left the room",
  timeout: "timed out",
  kicked: "kicked",
  banned: "banned",
  send_queue_exceeded: "too far behind",
  flood: "sent too fast",
  protocol_error: "protocol error",
};

function pad(value: number): string {
  return value < 10 ? `0${value}` : `${value}`;
}

/**
 * Formats an ISO-8601 time stamp as local `HH:MM:SS`.
 *
 * @param ts The time stamp.
 * @returns The local time of day.
 */
export function clock(ts: string): string {
  // Messages come in runs with the same time stamp: the last one is remembered.
  if (ts === lastStamp) return lastClock;
  const date = new Date(ts);
  const time = Number.isNaN(date.getTime())
    ? "--:--:--"
    : `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  lastStamp = ts;
  lastClock = time;
  return time;
}

let lastStamp: string | undefined;
let lastClock = "";

function body(prefix: string, text: string): string {
  const lines = sanitize(text, { newlines: true }).split("\n");
  if (lines.length === 1) return prefix + lines[0];
  const indent = " ".repeat(Math.min(prefix.length, 24));
  return prefix + lines.join("\n" + indent);
}

/** Options for {@linkcode formatFrame}. */
export interface FormatFrameOptions {
  /**
   * The room the reader types into. A message from any other room is tagged
   * with its room, so the reader can tell the rooms apart.
   *
   * @default {"#lobby"}
   */
  room?: string;
}

/**
 * Renders one server frame as text, or `undefined` for frames a person does
 * not need to see (acks). Multi-line messages are indented under their first
 * line; lines are separated by `\n` without a final newline.
 *
 * @example
 * ```ts
 * import { match } from "node:assert/strict";
 * import { formatFrame } from "./text_format.ts";
 *
 * const line = formatFrame({
 *   type: "message", room: "#lobby", from: "alice", text: "hi", ts: new Date().toISOString(), seq: 1,
 * });
 * match(line!, /^\[\d\d:\d\d:\d\d\] <alice> hi$/);
 * ```
 *
 * @param frame The frame to render.
 * @param options The room the reader types into.
 * @returns The text, or `undefined`.
 */
export function formatFrame(frame: ServerFrame, options?: FormatFrameOptions): string | undefined {
  switch (frame.type) {
    case "message": {
      const from = sanitize(frame.from);
      const where = frame.room === (options?.room ?? LOBBY) ? "" : `${sanitize(frame.room)} `;
      const prefix = `[${clock(frame.ts)}] ${frame.history ? "(history) " : ""}${where}` +
        (frame.action ? `* ${from} ` : frame.notice ? `-${from}- ` : `<${from}> `);
      return body(prefix, frame.text);
    }
    case "dm": {
      const from = sanitize(frame.from);
      const prefix = `[${clock(frame.ts)}] [private] ` +
        (frame.action ? `* ${from} ` : frame.notice ? `-${from}- ` : `<${from}> `);
      return body(prefix, frame.text);
    }
    case "topic":
      return `[${clock(frame.ts)}] -- ${sanitize(frame.from)} set the topic of ${
        sanitize(frame.room)
      }: ${sanitize(frame.topic)}`;
    case "join":
      return `[${clock(frame.ts)}] -> ${sanitize(frame.name)} joined ${sanitize(frame.room)}`;
    case "leave":
      return `[${clock(frame.ts)}] <- ${sanitize(frame.name)} left ${sanitize(frame.room)} (${
        LEAVE_REASONS[frame.reason] ?? sanitize(frame.reason)
      }${frame.by ? ` by ${sanitize(frame.by)}` : ""}${
        frame.message ? `: ${sanitize(frame.message)}` : ""
      })`;
    case "away":
      return `[${clock(frame.ts)}] -- ${sanitize(frame.name)} ${
        frame.message === "" ? "is back" : `is away: ${sanitize(frame.message)}`
      }`;
    case "nick":
      return `[${clock(frame.ts)}] -- ${sanitize(frame.from)} is now known as ${
        sanitize(frame.to)
      }`;
    case "ping":
    case "challenge":
      return undefined;
    case "offer":
      return `[${clock(new Date().toISOString())}] ${sanitize(frame.from)} offers "${
        sanitize(frame.name)
      }" (${frame.size} bytes); ` +
        "files need the chat client";
    case "transfer":
      return undefined;
    case "bye":
      return `*** ${sanitize(frame.message)}`;
    case "error":
      return `! ${sanitize(frame.message)}`;
    case "welcome": {
      const others = frame.members.filter((name) => name !== frame.name).map((name) =>
        sanitize(name)
      );
      return `*** You are ${sanitize(frame.name)} in ${sanitize(frame.room)}` +
        (others.length ? ` with ${others.join(", ")}` : "; nobody else is here yet") +
        ". Type /help for commands.";
    }
    case "ack": {
      const room = sanitize(frame.room ?? "");
      const away = frame.awayMessages;
      // A room's operators are marked @, as IRC clients show them.
      const ops = new Set(frame.ops);
      const names = frame.names?.map((name) =>
        (ops.has(name) ? "@" : "") + sanitize(name) +
        (away !== undefined && Object.hasOwn(away, name) ? ` (away: ${sanitize(away[name]!)})` : "")
      ).join(", ");
      if (frame.online !== undefined) {
        return `*** ${sanitize(frame.name ?? "")} is ${frame.online ? "online" : "offline"}` +
          (frame.op ? ", an operator" : "") +
          (frame.away ? `, away: ${sanitize(frame.away)}` : "") +
          (frame.fingerprint
            ? `; key ${sanitize(frame.fingerprint)}` +
              (shortFingerprint(frame.fingerprint) === undefined
                ? ""
                : ` (${shortFingerprint(frame.fingerprint)})`)
            : "; no key (anyone may use this name)");
      }
      if (frame.to !== undefined) {
        return frame.away
          ? `*** ${sanitize(frame.to)} is away: ${sanitize(frame.away)}`
          : undefined;
      }
      if (frame.away !== undefined) {
        return frame.away === "" ? "*** You are back" : `*** You are away: ${sanitize(frame.away)}`;
      }
      if (frame.name !== undefined) return `*** You are now known as ${sanitize(frame.name)}`;
      if (names !== undefined && frame.topic !== undefined) {
        return `*** You are in ${room}${
          frame.topic ? ` (topic: ${sanitize(frame.topic)})` : ""
        } with ${names}`;
      }
      if (names !== undefined) return `*** In ${room}: ${names}`;
      if (frame.rooms) {
        return "*** Rooms: " +
          frame.rooms.map((r) =>
            `${sanitize(r.name)} (${r.members})${r.topic ? ` ${sanitize(r.topic)}` : ""}`
          )
            .join(", ");
      }
      if (frame.topic !== undefined) {
        return `*** Topic of ${room}: ${frame.topic ? sanitize(frame.topic) : "(none)"}`;
      }
      if (frame.room !== undefined && frame.seq === undefined && frame.messages === undefined) {
        return `*** You left ${room}`;
      }
      return undefined;
    }
  }
}
