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
   * Bytes waiting to be written to one connection before it counts as behind.
   * A client whose queue is past this and that has taken nothing for 5
   * seconds (it stopped reading), or whose queue passes four times this, is
   * disconnected with the reason `send_queue_exceeded`, so it can never slow
   * the others down; one that reads slowly through a burst catches up.
   *
   * @default {1048576}
   */
  maxSendQueueBytes: number;
  /**
   * Bytes waiting to be written to all connections together, bytes that many
   * connections share (one message to a whole room) counted once. Past a
   * quarter of this the server stops reading requests until it is down to an
   * eighth, so senders wait for readers; past all of it, the reader furthest
   * behind is disconnected (`send_queue_exceeded`), then the next, until it
   * fits.
   *
   * @default {67108864}
   */
  maxQueuedBytes: number;
  /**
   * Time a new connection has to complete the handshake (or, on `nc`, to
   * type a name), in ms. Defends against connections that open and idle.
   *
   * @default {60000}
   */
  handshakeTimeout: number;
  /**
   * A JSON client that sends nothing for this long is disconnected, in ms.
   * The server sends `ping` after a third of it, which a client answers with
   * `pong`, so only dead peers are reaped. Plain-text users are not timed
   * out; TCP keepalive finds their dead connections.
   *
   * @default {120000}
   */
  idleTimeout: number;
  /**
   * Most connections open at once.
   *
   * @default {20000}
   */
  maxConnections: number;
  /**
   * Most connections open at once from one IP address.
   *
   * @default {100}
   */
  maxConnectionsPerIp: number;
  /**
   * New connections accepted from one IP address per second, after a burst of
   * twice as many.
   *
   * @default {10}
   */
  connectRate: number;
  /**
   * Requests (messages, commands) one connection may send per second,
   * sustained. A multi-line paste is one message. Lines of any kind (valid or
   * not, JSON or plain text) are read at up to this rate, with a burst of
   * `rateBurst`; beyond that the server stops reading the connection until it
   * may go on, so one connection cannot slow the others down.
   *
   * @default {10}
   */
  rateLimit: number;
  /**
   * Requests one connection may send in a burst before the rate applies.
   * Joining a room costs five.
   *
   * @default {40}
   */
  rateBurst: number;
  /**
   * A connection that keeps 32 KiB or more of lines waiting to be read (it
   * sends faster than `rateLimit` lines a second without waiting for the
   * answers) for this long, in ms, without a break, is disconnected with the
   * reason `flood`.
   *
   * @default {10000}
   */
  floodTimeout: number;
  /**
   * Most rooms one user can be in.
   *
   * @default {50}
   */
  maxRoomsPerUser: number;
  /**
   * Rooms with more members than this stop announcing joins and leaves, and
   * list only this many names in `who`; someone entering one is told only
   * their own name: in a crowd, presence traffic grows with the square of its
   * size.
   *
   * @default {500}
   */
  maxPresence: number;
  /**
   * Largest file that can be sent, in bytes.
   *
   * @default {4294967296}
   */
  maxFileBytes: number;
  /**
   * Most files one user may be offering or sending at once.
   *
   * @default {3}
   */
  maxTransfersPerUser: number;
  /**
   * How long a file offer waits to be accepted, in ms.
   *
   * @default {300000}
   */
  offerTimeout: number;
  /**
   * Failed logins (a wrong password, a key proof that does not verify) the
   * whole server tolerates per second, after a burst of ten times as many.
   * While more fail, addresses that failed lately wait before they may try
   * again; an address that has not failed may always try.
   *
   * @default {10}
   */
  loginFailureRate: number;
  /**
   * Longest wait imposed on one address for failed logins, in ms. After three
   * failures an address waits 1 s, then twice as long after each further one,
   * up to this; its record is forgotten after 15 quiet minutes.
   *
   * @default {60000}
   */
  loginBackoffMax: number;
}

/** The default limits. */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxFrameBytes: 64 * 1024,
  maxTextLength: 8000,
  maxSendQueueBytes: 1024 * 1024,
  maxQueuedBytes: 64 * 1024 * 1024,
  handshakeTimeout: 60_000,
  idleTimeout: 120_000,
  maxConnections: 20_000,
  maxConnectionsPerIp: 100,
  connectRate: 10,
  rateLimit: 10,
  rateBurst: 40,
  floodTimeout: 10_000,
  maxRoomsPerUser: 50,
  maxPresence: 500,
  maxFileBytes: 4 * 1024 ** 3,
  maxTransfersPerUser: 3,
  offerTimeout: 300_000,
  loginFailureRate: 10,
  loginBackoffMax: 60_000,
});

/** Longest name, in code points. */
export const MAX_NAME_LENGTH = 32;

/** Longest room name, in code points, `#` included. */
export const MAX_ROOM_LENGTH = 50;

/** Longest reason given for leaving a room or the chat (`part`, `quit`), in code points. */
export const MAX_REASON_LENGTH = 300;

/** Longest request id: a string of at most this many code points. */
export const MAX_ID_LENGTH = 64;

/** Most messages in one page of `search` results. */
export const MAX_SEARCH_PAGE = 50;

/** Longest text a `search` looks for, in code points. */
export const MAX_SEARCH_TEXT = 100;

/** Most stored messages one `search` request reads through (its answer says where to go on). */
export const SEARCH_SCAN_MESSAGES = 10_000;
