/**
 * Machine-readable error codes carried by `error` frames, and the error class
 * that carries them through the library.
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
 * An error reported by the chat server for one request, or by the client when
 * the connection fails. Inspect {@linkcode ProtocolError.code} to react to it.
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
