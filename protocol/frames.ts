/**
 * The frames of protocol version 1: their types, and the validation of frames
 * sent by clients. See `PROTOCOL.md` for the specification.
 *
 * @module
 */

import { type ErrorCode, ProtocolError } from "./errors.ts";
import { MAX_ID_LENGTH } from "./limits.ts";

/** A request id: a string of 1 to 64 characters, or a non-negative safe integer. */
export type RequestId = string | number;

/** Opens the session; answered by `welcome` or `error`. */
export interface HelloFrame {
  /** The frame type. */
  type: "hello";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** The protocol version the client speaks. */
  v: number;
  /** The name the user wants. */
  name: string;
  /** Free-form client software name and version, for the server's log. */
  client?: string;
}

/** Sends a message to a room. */
export interface SendFrame {
  /** The frame type. */
  type: "send";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** The room, starting with `#`. */
  room: string;
  /** The message text; may hold several lines. */
  text: string;
  /** `true` for an action (`/me waves`). */
  action?: boolean;
}

/** Sends a private message to one user. */
export interface DmFrame {
  /** The frame type. */
  type: "dm";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** The recipient's name. */
  to: string;
  /** The message text; may hold several lines. */
  text: string;
  /** `true` for an action (`/me waves`). */
  action?: boolean;
}

/** Changes the sender's name. */
export interface NickFrame {
  /** The frame type. */
  type: "nick";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** The name. */
  name: string;
}

/** Asks who is in a room. */
export interface WhoFrame {
  /** The frame type. */
  type: "who";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** @default {"#lobby"} */
  room?: string;
}

/** Asks to leave; the server acknowledges, then closes the connection. */
export interface QuitFrame {
  /** The frame type. */
  type: "quit";
  /** The request id, echoed in the answer. */
  id: RequestId;
}

/** Asks for an acknowledgement, to check the connection is alive. */
export interface PingFrame {
  /** The frame type. */
  type: "ping";
  /** The request id, echoed in the answer. */
  id: RequestId;
}

/** Every frame a client may send. */
export type ClientFrame =
  | HelloFrame
  | SendFrame
  | DmFrame
  | NickFrame
  | WhoFrame
  | QuitFrame
  | PingFrame;

/** Answers `hello`: the session is open. */
export interface WelcomeFrame {
  /** The frame type. */
  type: "welcome";
  /** The request id, echoed in the answer. */
  id: RequestId;
  v: number;
  /** Server software name and version. */
  server: string;
  /** The name the server registered (normalised). */
  name: string;
  /** The room the user is now in. */
  room: string;
  /** Everyone in that room, the user included. */
  members: string[];
  /** The limits the server enforces. */
  limits: { maxFrameBytes: number; maxTextLength: number };
}

/** Answers a request that succeeded. Which fields are present depends on the request. */
export interface AckFrame {
  /** The frame type. */
  type: "ack";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** `send`, `who`: the room. */
  room?: string;
  /** `send`: the stored message's sequence number in its room. */
  seq?: number;
  /** `send`, `dm`: when the server stamped the message. */
  ts?: string;
  /** `dm`: the recipient's name. */
  to?: string;
  /** `nick`: the new name. */
  name?: string;
  /** `who`: the names in the room, sorted. */
  names?: string[];
}

/** Answers a request that failed, or reports a frame that could not be read. */
export interface ErrorFrame {
  /** The frame type. */
  type: "error";
  /** The failed request's id; absent when the frame could not be read. */
  id?: RequestId;
  /** The machine-readable error code. */
  code: ErrorCode;
  /** What happened, for people. */
  message: string;
}

/** A message in a room. */
export interface MessageEvent {
  /** The frame type. */
  type: "message";
  /** The room, starting with `#`. */
  room: string;
  /** Who sent it, as set by the server. */
  from: string;
  /** The message text; may hold several lines. */
  text: string;
  /** ISO-8601 UTC time stamped by the server. */
  ts: string;
  /** Position in the room: one more than the previous message's. */
  seq: number;
  /** `true` for an action (`/me waves`). */
  action?: boolean;
}

/** A private message, sent to its recipient. */
export interface DmEvent {
  /** The frame type. */
  type: "dm";
  /** Who sent it, as set by the server. */
  from: string;
  /** The recipient's name. */
  to: string;
  /** The message text; may hold several lines. */
  text: string;
  /** ISO-8601 UTC time stamped by the server. */
  ts: string;
  /** `true` for an action (`/me waves`). */
  action?: boolean;
}

/** Someone entered a room. */
export interface JoinEvent {
  /** The frame type. */
  type: "join";
  /** The room, starting with `#`. */
  room: string;
  /** The name. */
  name: string;
  /** ISO-8601 UTC time stamped by the server. */
  ts: string;
}

/**
 * Why someone left: `quit` after the exit handshake, `lost` when the connection
 * broke, `send_queue_exceeded` when they stopped reading, `protocol_error`
 * when they broke the protocol.
 */
export type LeaveReason = "quit" | "lost" | "send_queue_exceeded" | "protocol_error";

/** Someone left a room. */
export interface LeaveEvent {
  /** The frame type. */
  type: "leave";
  /** The room, starting with `#`. */
  room: string;
  /** The name. */
  name: string;
  /** Why, as a machine-readable code. */
  reason: LeaveReason;
  /** ISO-8601 UTC time stamped by the server. */
  ts: string;
}

/** Someone changed their name. */
export interface NickEvent {
  /** The frame type. */
  type: "nick";
  /** The old name. */
  from: string;
  /** The new name. */
  to: string;
  /** ISO-8601 UTC time stamped by the server. */
  ts: string;
}

/** Why the server is closing the connection. */
export type ByeReason = "shutdown" | "send_queue_exceeded" | "protocol_error";

/** The server is about to close the connection, and says why. */
export interface ByeFrame {
  /** The frame type. */
  type: "bye";
  /** Why, as a machine-readable code. */
  reason: ByeReason;
  /** What happened, for people. */
  message: string;
}

/** Every frame a server may send. */
export type ServerFrame =
  | WelcomeFrame
  | AckFrame
  | ErrorFrame
  | MessageEvent
  | DmEvent
  | JoinEvent
  | LeaveEvent
  | NickEvent
  | ByeFrame;

type Shape = Record<string, "string" | "boolean" | "number" | "string?" | "boolean?">;

const SHAPES: Record<ClientFrame["type"], Shape> = {
  hello: { v: "number", name: "string", client: "string?" },
  send: { room: "string", text: "string", action: "boolean?" },
  dm: { to: "string", text: "string", action: "boolean?" },
  nick: { name: "string" },
  who: { room: "string?" },
  quit: {},
  ping: {},
};

function isRequestId(value: unknown): value is RequestId {
  if (typeof value === "string") {
    return value.length > 0 &&
      (value.length <= MAX_ID_LENGTH || [...value].length <= MAX_ID_LENGTH);
  }
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Parses one line sent by a client into a frame, checking every field's type.
 * Unknown fields are ignored, so later versions can add optional ones.
 *
 * @example Parse a send request
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { parseClientFrame } from "./frames.ts";
 *
 * const frame = parseClientFrame('{"type":"send","id":1,"room":"#lobby","text":"hi"}');
 * deepEqual(frame, { type: "send", id: 1, room: "#lobby", text: "hi" });
 * ```
 *
 * @param line One frame, without its newline.
 * @returns The frame.
 * @throws {ProtocolError} With `bad_json`, `bad_request` or `unknown_type`, and
 * the request id in `cause` when one could be read.
 */
export function parseClientFrame(line: string): ClientFrame {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new ProtocolError("bad_json", "Frame is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError("bad_json", "Frame is not a JSON object");
  }
  const frame = value as Record<string, unknown>;
  const id = isRequestId(frame.id) ? frame.id : undefined;
  const fail = (code: ErrorCode, message: string): never => {
    throw new ProtocolError(code, message, { cause: id });
  };
  if (typeof frame.type !== "string") fail("bad_request", 'Field "type" must be a string');
  const shape = Object.hasOwn(SHAPES, frame.type as string)
    ? SHAPES[frame.type as ClientFrame["type"]]
    : undefined;
  if (shape === undefined) {
    fail("unknown_type", `Unknown frame type ${JSON.stringify(frame.type).slice(0, 80)}`);
  }
  if (id === undefined) {
    fail(
      "bad_request",
      'Field "id" must be a string of 1 to 64 characters or a non-negative integer',
    );
  }
  for (const [field, kind] of Object.entries(shape!)) {
    const optional = kind.endsWith("?");
    const type = optional ? kind.slice(0, -1) : kind;
    const present = frame[field];
    if (present === undefined && optional) continue;
    const actual: string = typeof present;
    if (actual !== type) {
      fail("bad_request", `Field "${field}" must be a ${type}`);
    }
  }
  return frame as unknown as ClientFrame;
}

/**
 * Reads the request id out of a {@linkcode ProtocolError} thrown by
 * {@linkcode parseClientFrame}, so the error frame can name the request.
 *
 * @param error The error thrown by the parser.
 * @returns The id, when the frame had a valid one.
 */
export function requestIdOf(error: ProtocolError): RequestId | undefined {
  return isRequestId(error.cause) ? error.cause : undefined;
}
