/**
 * The protocol's limits and their defaults.
 *
 * @module
 */

/** The protocol version this implementation speaks. */
export const PROTOCOL_VERSION = 1;

/** The room everyone is in after joining. */
export const LOBBY = "#lobby";

/** Limits a server enforces. Every field is optional in {@linkcode ServeOptions}. */
export interface Limits {
  /**
   * Longest frame, in bytes, newline excluded. Longer frames are discarded
   * without being buffered and answered with `frame_too_large`.
   *
   * @default {65536}
   */
  maxFrameBytes: number;
  /**
   * Longest message text, in Unicode code points.
   *
   * @default {8000}
   */
  maxTextLength: number;
  /**
   * Most bytes waiting to be written to one connection. A client whose queue
   * grows past this (it stopped reading) is disconnected with the reason
   * `send_queue_exceeded`, so it can never slow the others down.
   *
   * @default {1048576}
   */
  maxSendQueueBytes: number;
}

/** The default limits. */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxFrameBytes: 64 * 1024,
  maxTextLength: 8000,
  maxSendQueueBytes: 1024 * 1024,
});

/** Longest name, in code points. */
export const MAX_NAME_LENGTH = 32;

/** Longest room name, in code points, `#` included. */
export const MAX_ROOM_LENGTH = 50;

/** Longest request id: a string of at most this many code points. */
export const MAX_ID_LENGTH = 64;
