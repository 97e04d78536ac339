/**
 * Machine-readable error codes carried by `error` frames, and the error
 * classes that carry them through the library: {@linkcode ProtocolError} for
 * what a server refused, {@linkcode ConnectionError} for failures on the
 * client's own side.
 *
 * @module
 */

/**
 * Every error code a server sends in an `error` frame, and the codes the client
 * library uses for failures that happen on its own side (`closed`,
 * `timeout`, `unreachable`).
 */
export type ErrorCode =
  /** The frame was longer than the frame limit; it was discarded unread. */
  | "frame_too_large"
  /** The frame was not valid UTF-8. */
  | "bad_utf8"
  /** The frame was not valid JSON, or not a JSON object. */
  | "bad_json"
  /** A field was missing, of the wrong type or out of range. */
  | "bad_request"
  /** The frame's `type` is not one this protocol version knows. */
  | "unknown_type"
  /** The `hello` asked for a protocol version this server does not speak. */
  | "unsupported_version"
  /** A request arrived before the handshake completed. */
  | "not_registered"
  /** A second `hello` arrived on a registered connection. */
  | "already_registered"
  /** The name does not follow the name rules. */
  | "invalid_name"
  /** Someone else is using that name. */
  | "name_taken"
  /** The room name does not follow the room-name rules. */
  | "invalid_room"
  /** The sender is not a member of the room named in the request. */
  | "not_in_room"
  /** No user has that name (online, or claimed for `whois`), or it is not banned (`unban`). */
  | "no_such_user"
  /** The message text is empty or longer than the text limit. */
  | "invalid_text"
  /** The server is shutting down and accepts no more requests. */
  | "shutting_down"
  /**
   * The server could not store the message (nothing was stored or sent), or
   * could not read the history asked for.
   */
  | "storage_failed"
  /** The server's password is missing or wrong. */
  | "unauthorized"
  /** The name is bound to another key. */
  | "name_claimed"
  /** The user, key or address is banned; the message says until when. */
  | "banned"
  /** The user is muted and cannot send messages. */
  | "muted"
  /** Only operators may do that. */
  | "not_operator"
  /** A key was offered but not proven, or the proof does not verify. */
  | "auth_failed"
  /** No such transfer, or not one of yours. */
  | "no_such_transfer"
  /** The file is too large, too many transfers are running, or nobody offered it can take it. */
  | "transfer_refused"
  /** Client side: a transfer failed (cancelled, cut off, or the hash did not match). */
  | "transfer_failed"
  /** The server failed on this request (a bug); it was logged, and the connection goes on. */
  | "internal_error"
  /** Too many requests too fast; the message says when to try again. */
  | "rate_limited"
  /** The user is in as many rooms as the server allows. */
  | "too_many_rooms"
  /** Client side: the connection closed before an answer arrived. */
  | "closed"
  /** Client side: no answer arrived in time. */
  | "timeout"
  /** Client side: the server could not be reached. */
  | "unreachable"
  /**
   * Client side: the server's TLS certificate no longer matches the pinned
   * fingerprint, or no longer verifies; the client does not reconnect.
   */
  | "certificate_changed"
  /** Client side: the server sent a frame that breaks the protocol; it was ignored. */
  | "invalid_frame";

/**
 * An error reported by the chat server for one request: it refused it. Inspect
 * {@linkcode ProtocolError.code} to react to it. Failures on the client's own
 * side (the server unreachable, no answer in time, the connection closed) are
 * {@linkcode ConnectionError}s, a subclass, so catching `ProtocolError`
 * still catches every failure of a request.
 *
 * @example Catch a name clash
 * ```ts
 * import { ProtocolError } from "./errors.ts";
 *
 * const error = new ProtocolError("name_taken", 'The name "bob" is taken');
 * if (error instanceof ProtocolError && error.code === "name_taken") {
 *   console.log(error.message);
 * }
 * ```
 */
export class ProtocolError extends Error {
  /** The machine-readable reason. */
  readonly code: ErrorCode;

  /**
   * Creates an error with a code and a human-readable message.
   *
   * @param code The machine-readable reason.
   * @param message What happened, in a sentence.
   * @param options The cause, if any.
   */
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProtocolError";
    this.code = code;
  }
}

/**
 * The codes of failures on the client's own side. A server never sends them.
 */
export type ConnectionErrorCode =
  /** The connection closed before an answer or event arrived. */
  | "closed"
  /** No answer or event arrived in time. */
  | "timeout"
  /** The server could not be reached, or its TLS certificate did not verify. */
  | "unreachable"
  /** The server's TLS certificate does not match the pinned fingerprint. */
  | "certificate_changed"
  /** The server's answer broke the protocol. */
  | "invalid_frame";

/**
 * A failure on the client's own side, not a refusal by the server: the server
 * could not be reached, did not answer in time, closed the connection, showed
 * another certificate than the one pinned, or answered with a frame that
 * breaks the protocol. Retrying later may help; changing the request does not.
 *
 * It extends {@linkcode ProtocolError}, so code that catches `ProtocolError`
 * and checks its `code` keeps working; test `instanceof ConnectionError` to
 * tell a local failure from a refusal.
 *
 * @example Tell a network failure from a refusal
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { ConnectionError, ProtocolError } from "./errors.ts";
 *
 * const error: unknown = new ConnectionError("unreachable", 'Cannot connect to "127.0.0.1:7777"');
 * equal(error instanceof ConnectionError, true);
 * equal(error instanceof ProtocolError, true);
 * ```
 */
export class ConnectionError extends ProtocolError {
  /** What went wrong, machine-readable. */
  declare readonly code: ConnectionErrorCode;

  /**
   * Creates the error.
   *
   * @param code What went wrong.
   * @param message What happened, in a sentence.
   * @param options The cause, if any.
   */
  constructor(code: ConnectionErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = "ConnectionError";
  }
}

/**
 * How long a `rate_limited` refusal asks to wait before trying again, read
 * from its message ("try again in 0.4 s").
 *
 * @param error The refusal.
 * @returns The wait in ms (1 s when the message names none, 60 s at most),
 * or `undefined` when the error is not `rate_limited`.
 *
 * @example The wait a refusal names
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { ProtocolError, retryAfter } from "./errors.ts";
 *
 * const error = new ProtocolError("rate_limited", "Slow down: too many requests; try again in 0.4 s");
 * equal(retryAfter(error), 400);
 * ```
 */
export function retryAfter(error: ProtocolError): number | undefined {
  if (error.code !== "rate_limited") return undefined;
  const seconds = Number(/try again in (\d+(?:\.\d+)?) s/.exec(error.message)?.[1]);
  return Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds * 1000, 60_000) : 1000;
}
