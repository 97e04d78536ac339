/**
 * The frames of protocol version 1: their types, and the validation of frames
 * sent by clients and by servers. See `PROTOCOL.md` for the specification.
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
  /**
   * A resume token from an earlier `welcome`: take over that session (its
   * name and rooms) if the server still holds it.
   */
  resume?: string;
  /**
   * Whether the client will reconnect when the connection drops. The server
   * then holds the session for a grace period instead of announcing the
   * user as lost at once.
   */
  reconnect?: boolean;
  /**
   * How many recent `#lobby` messages to replay; capped by the server.
   */
  history?: number;
  /** The server's password, when it has one. */
  password?: string;
  /**
   * The user's Ed25519 public key (raw, base64). The server answers with a
   * `challenge` to sign before `welcome`; names are bound to the first key
   * that claims them.
   */
  key?: string;
  /**
   * With `key`: the server as the client dialed it, `host:port` (an IPv6
   * host in brackets). The key proof is bound to it, and the server refuses
   * a proof for a port that is not its own.
   */
  server?: string;
  /**
   * With `key`, over TLS: the fingerprint of the certificate the client saw
   * (`SHA256:` and 32 hex bytes with colons). The server refuses a proof for
   * a certificate that is not its own.
   */
  tls?: string;
  /**
   * A short-lived session (a one-shot `chat send`): the server does not
   * announce its joins and leaves to the rooms.
   */
  transient?: boolean;
  /**
   * Events the client understands beyond those every client does, so the
   * server may send them: `"away"` (the {@linkcode AwayEvent}). At most 16
   * names of at most 32 characters; unknown ones are ignored.
   */
  caps?: string[];
}

/** Proves possession of the key in `hello`: the signature of the challenge. */
export interface AuthFrame {
  /** The frame type. */
  type: "auth";
  /** The id of the `hello` being answered. */
  id: RequestId;
  /** The client's own one-time nonce (base64), part of the signed bytes. */
  nonce?: string;
  /** Base64 Ed25519 signature of the key proof bytes (see `PROTOCOL.md`). */
  signature: string;
}

/** Shows who holds a name: online or not, and the fingerprint of its key. */
export interface WhoisFrame {
  /** The frame type. */
  type: "whois";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** The name. */
  name: string;
}

/** Operators only: disconnects a user. */
export interface KickFrame {
  /** The frame type. */
  type: "kick";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** The name. */
  name: string;
  /** Why, shown to the kicked user. */
  reason?: string;
  /**
   * Only remove them from this room (the room's operators may too), instead
   * of disconnecting them.
   */
  room?: string;
}

/** Operators only: bans a name, a key (`key:SHA256:…`) or an address (`ip:…`), and kicks who matches. */
export interface BanFrame {
  /** The frame type. */
  type: "ban";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** A name, `key:FINGERPRINT` or `ip:ADDRESS`. */
  target: string;
  /** Seconds; absent for ever. */
  duration?: number;
  /** Why, shown to the banned user. */
  reason?: string;
}

/** Operators only: lifts a ban. */
export interface UnbanFrame {
  /** The frame type. */
  type: "unban";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** As in `ban`. */
  target: string;
}

/** Operators only: stops a name from sending messages (or lets it again with `duration: 0`). */
export interface MuteFrame {
  /** The frame type. */
  type: "mute";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** The name. */
  name: string;
  /** Seconds; absent for ever; `0` lifts the mute. */
  duration?: number;
  /** Why. */
  reason?: string;
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
  /**
   * `true` for a notice: an automatic message (a bot's, a service's) that
   * clients must never answer automatically. Shown as IRC's `NOTICE`.
   */
  notice?: boolean;
  /**
   * An idempotency key (1 to 64 characters, unique per sender): a message
   * sent again with the same key is acknowledged with the first one's
   * sequence number instead of being stored twice.
   */
  key?: string;
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
  /**
   * `true` for a notice: an automatic message (a bot's, a service's) that
   * clients must never answer automatically. Shown as IRC's `NOTICE`.
   */
  notice?: boolean;
  /** An idempotency key, as for `send`. */
  key?: string;
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
  /** The room; for plain-text users the room they type into, else `#lobby`. */
  room?: string;
}

/** Enters a room, creating it if it does not exist. */
export interface JoinFrame {
  /** The frame type. */
  type: "join";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** The room, starting with `#`. */
  room: string;
  /** How many recent messages to replay; capped by the server. */
  history?: number;
}

/** Leaves a room. */
export interface PartFrame {
  /** The frame type. */
  type: "part";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** The room, starting with `#`. */
  room: string;
  /** Why, shown to the others (at most 300 characters). */
  reason?: string;
}

/** Reads a room's settings, or (its operators) changes them. */
export interface ModeFrame {
  /** The frame type. */
  type: "mode";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** The room, starting with `#`. */
  room: string;
  /** Only operators may set the topic (IRC's `+t`); absent to leave it as it is. */
  topicLock?: boolean;
}

/** Lists the rooms. */
export interface RoomsFrame {
  /** The frame type. */
  type: "rooms";
  /** The request id, echoed in the answer. */
  id: RequestId;
}

/** Reads or sets a room's topic. */
export interface TopicFrame {
  /** The frame type. */
  type: "topic";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** The room, starting with `#`. */
  room: string;
  /** The new topic; absent to read it, `""` to clear it. */
  topic?: string;
}

/** Reads a room's stored messages. */
export interface HistoryFrame {
  /** The frame type. */
  type: "history";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** The room, starting with `#`. */
  room: string;
  /** Only messages with a smaller sequence number (to page backwards). */
  before?: number;
  /** Only messages with a larger sequence number. */
  after?: number;
  /** How many messages at most; capped by the server. */
  limit?: number;
}

/** Marks the user away with a message, or back (no message, or only spaces). */
export interface AwayFrame {
  /** The frame type. */
  type: "away";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** Why the user is away; absent or blank: the user is back. */
  message?: string;
}

/** Searches the stored messages of a room for a text, newest first, a page at a time. */
export interface SearchFrame {
  /** The frame type. */
  type: "search";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** The room, starting with `#`; the user must be in it. */
  room: string;
  /** The text to look for (ignoring the case of ASCII letters). */
  text: string;
  /** Only messages with a smaller sequence number: the `next` of the page before. */
  before?: number;
  /** How many messages at most; capped by the server. */
  limit?: number;
}

/** Asks to leave; the server acknowledges, then closes the connection. */
export interface QuitFrame {
  /** The frame type. */
  type: "quit";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** Why, shown to the others (at most 300 characters). */
  reason?: string;
}

/** Asks for an acknowledgement, to check the connection is alive. */
export interface PingFrame {
  /** The frame type. */
  type: "ping";
  /** The request id, echoed in the answer. */
  id: RequestId;
}

/** Answers the server's `ping`. Not a request: it has no id and no answer. */
export interface PongFrame {
  /** The frame type. */
  type: "pong";
}

/** Offers a file to a user or to everyone in a room. */
export interface OfferFrame {
  /** The frame type. */
  type: "offer";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** A user's name, or a room (`#…`) the sender is in. */
  to: string;
  /** The file's name (the receiver makes it safe). */
  name: string;
  /** Its size in bytes. */
  size: number;
  /** Its media type, e.g. `image/png`. */
  mime?: string;
  /** Its SHA-256, hex: the receiver keeps the file only if it matches. */
  sha256: string;
}

/** Accepts an offer: the answer carries the token for the data connection. */
export interface AcceptFrame {
  /** The frame type. */
  type: "accept";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** The offer's transfer id. */
  transfer: string;
}

/** Declines an offer. */
export interface DeclineFrame {
  /** The frame type. */
  type: "decline";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** The offer's transfer id. */
  transfer: string;
}

/** Stops a transfer (the sender: every leg; a receiver: its own). */
export interface CancelFrame {
  /** The frame type. */
  type: "cancel";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** The transfer id. */
  transfer: string;
}

/** The receiver tells whether the file arrived whole (its hash matched). */
export interface ReceivedFrame {
  /** The frame type. */
  type: "received";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** The transfer id. */
  transfer: string;
  /** Whether the size and SHA-256 matched the offer. */
  ok: boolean;
}

/**
 * Opens a data connection for a transfer: the first and only frame on a new
 * connection. The server answers `{"type":"data","ok":true}` (or an `error`
 * and a close); then the sender writes the file's bytes, or the receiver reads
 * them.
 */
export interface DataFrame {
  /** The frame type. */
  type: "data";
  /** The token from the `accept` answer (receiver) or the `accepted` event (sender). */
  token: string;
}

/** Every frame a client may send. */
export type ClientFrame =
  | HelloFrame
  | SendFrame
  | DmFrame
  | NickFrame
  | WhoFrame
  | JoinFrame
  | PartFrame
  | ModeFrame
  | RoomsFrame
  | TopicFrame
  | HistoryFrame
  | QuitFrame
  | PingFrame
  | PongFrame
  | AuthFrame
  | WhoisFrame
  | AwayFrame
  | SearchFrame
  | KickFrame
  | BanFrame
  | UnbanFrame
  | MuteFrame
  | OfferFrame
  | AcceptFrame
  | DeclineFrame
  | CancelFrame
  | ReceivedFrame
  | DataFrame;

/** Answers `hello`: the session is open. */
export interface WelcomeFrame {
  /** The frame type. */
  type: "welcome";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** The protocol version. */
  v: number;
  /** Server software name and version. */
  server: string;
  /** The name the server registered (normalised). */
  name: string;
  /** The room the user is in first: `#lobby`. */
  room: string;
  /** Everyone in that room, the user included; only the user in a crowded room (see `count`). */
  members: string[];
  /** How many are in that room, given when it is crowded and `members` lists only the user. */
  count?: number;
  /** Every room the user is in (more than one after a resume), with its last sequence number. */
  rooms: RoomState[];
  /** The token to resume this session after a lost connection. */
  session: string;
  /** Whether an earlier session was resumed (name and rooms kept). */
  resumed: boolean;
  /** How long the server holds a lost session for a reconnect, in ms. */
  resumeGrace: number;
  /** The limits the server enforces. */
  limits: { maxFrameBytes: number; maxTextLength: number; idleTimeout: number };
}

/** A room the user is in, as `welcome` describes it. */
export interface RoomState {
  /** The room's name. */
  name: string;
  /** The sequence number of its last message (0 when it has none). */
  seq: number;
  /** Its topic, `""` when none. */
  topic: string;
  /** Everyone in it, sorted; only the user in a crowded room (see `count`). */
  members: string[];
  /**
   * How many are in it, given when the room is crowded (more members than
   * `maxPresence`) and `members` lists only the user.
   */
  count?: number;
}

/** A room as `rooms` describes it. */
export interface RoomInfo {
  /** The room's name. */
  name: string;
  /** How many people are in it. */
  members: number;
  /** Its topic, `""` when none. */
  topic: string;
}

/** Answers a request that succeeded. Which fields are present depends on the request. */
export interface AckFrame {
  /** The frame type. */
  type: "ack";
  /** The request id, echoed in the answer. */
  id: RequestId;
  /** `send`, `who`, `join`, `part`, `topic`, `history`: the room. */
  room?: string;
  /** `send`: the stored message's sequence number in its room. */
  seq?: number;
  /** `send`, `dm`: when the server stamped the message. */
  ts?: string;
  /** `dm`: the recipient's name. */
  to?: string;
  /** `nick`: the new name. */
  name?: string;
  /** `who`, `join`: the names in the room, sorted (`join`: only the user's in a crowded room). */
  names?: string[];
  /** `join`: how many are in the room, given when it is crowded and `names` lists only the user. */
  count?: number;
  /** `who`, `join`, `mode`: the room's operators among `names`, when it has any. */
  ops?: string[];
  /** `mode`: whether only operators may set the topic. */
  topicLock?: boolean;
  /** `join`, `topic`: the room's topic. */
  topic?: string;
  /** `rooms`: every room with people in it. */
  rooms?: RoomInfo[];
  /** `history`: the messages, oldest first. */
  messages?: MessageEvent[];
  /** `send`, `dm`: `true` when the key was seen before and nothing new was stored. */
  duplicate?: boolean;
  /** `whois`: the fingerprint of the key the name is bound to, if any. */
  fingerprint?: string;
  /** `whois`: whether the name is online. */
  online?: boolean;
  /** `whois`: whether the name is an operator. */
  op?: boolean;
  /**
   * `away`: the user's away message now, `""` when back; `whois`, `dm`: the
   * person's away message, only when they are away.
   */
  away?: string;
  /** `who`: the away messages of the members who are away, by name. */
  awayMessages?: Record<string, string>;
  /**
   * `search`: the `before` that reads the next (older) page; absent when the
   * search reached the room's first message.
   */
  next?: number;
  /** `offer`, `accept`: the transfer id. */
  transfer?: string;
  /** `accept`: the secret that opens this receiver's data connection. */
  token?: string;
  /** `offer`: when the offer expires (ISO-8601). */
  expires?: string;
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
  /**
   * The requests this error answers together, when refusals were coalesced
   * (a connection over its line budget); then `id` is absent.
   */
  ids?: RequestId[];
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
  /** `true` for a notice (kept as such: history replays it as a notice). */
  notice?: boolean;
  /** `true` when replayed from history on joining, not sent just now. */
  history?: boolean;
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
  /** `true` for a notice. */
  notice?: boolean;
}

/** Someone entered a room. */
export interface JoinEvent {
  /** The frame type. */
  type: "join";
  /** The room, starting with `#`. */
  room: string;
  /** The name. */
  name: string;
  /** `true` when they are an operator of the room (a server operator). */
  op?: boolean;
  /** ISO-8601 UTC time stamped by the server. */
  ts: string;
}

/**
 * Why someone left: `quit` after the exit handshake, `part` when they left
 * the room but not the chat, `lost` when the connection broke (for a client
 * that reconnects: when it did not come back in time), `timeout` when it went
 * silent, `kicked` or `banned` by an operator, `send_queue_exceeded` when they
 * stopped reading, `flood` when they kept sending lines too fast,
 * `protocol_error` (reserved) when they broke the protocol.
 */
export type LeaveReason =
  | "quit"
  | "part"
  | "lost"
  | "timeout"
  | "kicked"
  | "banned"
  | "send_queue_exceeded"
  | "flood"
  | "protocol_error";

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
  /** `part`, `quit`: the reason the person gave; `kicked` from the room: the operator's. */
  message?: string;
  /** `kicked` from the room (not from the chat): the operator who did it. */
  by?: string;
  /** ISO-8601 UTC time stamped by the server. */
  ts: string;
}

/**
 * Someone in a room you share went away or came back. Sent only to clients
 * that listed `"away"` in `hello.caps`.
 */
export interface AwayEvent {
  /** The frame type. */
  type: "away";
  /** The name. */
  name: string;
  /** Why they are away; `""` when they are back. */
  message: string;
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

/** A room's topic changed. */
export interface TopicEvent {
  /** The frame type. */
  type: "topic";
  /** The room, starting with `#`. */
  room: string;
  /** The new topic, `""` when cleared. */
  topic: string;
  /** Who set it. */
  from: string;
  /** ISO-8601 UTC time stamped by the server. */
  ts: string;
}

/** Why the server is closing the connection. */
export type ByeReason =
  | "shutdown"
  | "send_queue_exceeded"
  | "flood"
  | "protocol_error"
  | "replaced"
  | "timeout"
  | "kicked"
  | "banned";

/** The server is about to close the connection, and says why. */
export interface ByeFrame {
  /** The frame type. */
  type: "bye";
  /** Why, as a machine-readable code. */
  reason: ByeReason;
  /** What happened, for people. */
  message: string;
}

/** Answers a `hello` with a key: sign these bytes (see `PROTOCOL.md`) and send `auth`. */
export interface ChallengeFrame {
  /** The frame type. */
  type: "challenge";
  /** The id of the `hello`. */
  id: RequestId;
  /** Random, base64. */
  nonce: string;
}

/** A file is offered to you (or to a room you are in). */
export interface FileOfferEvent {
  /** The frame type. */
  type: "offer";
  /** The transfer id: give it to `accept` or `decline`. */
  transfer: string;
  /** Who offers it. */
  from: string;
  /** Your name, or the room it was offered to. */
  to: string;
  /** The file's name as the sender gave it (not yet made safe). */
  name: string;
  /** Its size in bytes. */
  size: number;
  /** Its media type. */
  mime: string;
  /** Its SHA-256, hex. */
  sha256: string;
  /** When the offer expires (ISO-8601). */
  expires: string;
}

/**
 * What happened to a transfer: for the sender, `accepted` (with the token
 * for its data connection), `declined` or `received` (the receiver checked
 * the file: `ok`); for both sides, `cancelled` or `expired`.
 */
export interface TransferEvent {
  /** The frame type. */
  type: "transfer";
  /** The transfer id. */
  transfer: string;
  /** What happened. */
  state: "accepted" | "declined" | "received" | "cancelled" | "expired";
  /** Who did it (the receiver, or whoever cancelled). */
  by: string;
  /** `accepted`: the leg (one per receiver) and the sender's data token. */
  leg?: string;
  /** `accepted`: the secret that opens the sender's data connection for this leg. */
  token?: string;
  /** `received`: whether the file arrived whole. */
  ok?: boolean;
  /** `cancelled`: why. */
  reason?: string;
}

/** The server checks the client is alive; the client answers `pong`. */
export interface ServerPingFrame {
  /** The frame type. */
  type: "ping";
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
  | TopicEvent
  | AwayEvent
  | ServerPingFrame
  | ChallengeFrame
  | FileOfferEvent
  | TransferEvent
  | ByeFrame;

type Kind = "string" | "boolean" | "number" | "integer" | "object";
type Shape = Record<string, Kind | `${Kind}?`>;

const SHAPES: Record<ClientFrame["type"], Shape> = {
  hello: {
    v: "number",
    name: "string",
    client: "string?",
    resume: "string?",
    reconnect: "boolean?",
    history: "integer?",
    password: "string?",
    key: "string?",
    server: "string?",
    tls: "string?",
    transient: "boolean?",
  },
  auth: { signature: "string", nonce: "string?" },
  whois: { name: "string" },
  away: { message: "string?" },
  search: { room: "string", text: "string", before: "integer?", limit: "integer?" },
  kick: { name: "string", reason: "string?", room: "string?" },
  mode: { room: "string", topicLock: "boolean?" },
  ban: { target: "string", duration: "integer?", reason: "string?" },
  unban: { target: "string" },
  mute: { name: "string", duration: "integer?", reason: "string?" },
  offer: { to: "string", name: "string", size: "integer", mime: "string?", sha256: "string" },
  accept: { transfer: "string" },
  decline: { transfer: "string" },
  cancel: { transfer: "string" },
  received: { transfer: "string", ok: "boolean" },
  data: { token: "string" },
  send: { room: "string", text: "string", action: "boolean?", notice: "boolean?", key: "string?" },
  dm: { to: "string", text: "string", action: "boolean?", notice: "boolean?", key: "string?" },
  nick: { name: "string" },
  who: { room: "string?" },
  join: { room: "string", history: "integer?" },
  part: { room: "string", reason: "string?" },
  rooms: {},
  topic: { room: "string", topic: "string?" },
  history: { room: "string", before: "integer?", after: "integer?", limit: "integer?" },
  quit: { reason: "string?" },
  ping: {},
  pong: {},
};

/** One field of a shape, read once from {@linkcode SHAPES}. */
interface FieldCheck {
  field: string;
  kind: Kind;
  optional: boolean;
}

/** {@linkcode SHAPES} as lists of checks, so a frame is checked without taking them apart. */
const CHECKS: ReadonlyMap<string, readonly FieldCheck[]> = new Map(
  Object.entries(SHAPES).map(([type, shape]) => [
    type,
    Object.entries(shape).map(([field, expected]) => {
      const optional = expected.endsWith("?");
      return { field, kind: (optional ? expected.slice(0, -1) : expected) as Kind, optional };
    }),
  ]),
);

function kindOf(value: unknown): Kind | "other" {
  switch (typeof value) {
    case "string":
      return "string";
    case "boolean":
      return "boolean";
    case "number":
      return Number.isSafeInteger(value) && (value as number) >= 0 ? "integer" : "number";
    case "object":
      return value !== null && !Array.isArray(value) ? "object" : "other";
    default:
      return "other";
  }
}

function fits(kind: Kind, value: unknown): boolean {
  const actual = kindOf(value);
  return actual === kind || (kind === "number" && actual === "integer");
}

function isKey(value: unknown): boolean {
  return typeof value === "string" && value.length > 0 && [...value].length <= MAX_ID_LENGTH;
}

function isCaps(value: unknown): boolean {
  return Array.isArray(value) && value.length <= 16 &&
    value.every((cap) => typeof cap === "string" && cap.length > 0 && cap.length <= 32);
}

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
  const type = frame.type;
  if (typeof type !== "string") throw invalid("bad_request", 'Field "type" must be a string', id);
  const checks = CHECKS.get(type);
  if (checks === undefined) {
    throw invalid("unknown_type", `Unknown frame type ${JSON.stringify(type).slice(0, 80)}`, id);
  }
  if (id === undefined && type !== "pong" && type !== "data") {
    throw invalid(
      "bad_request",
      'Field "id" must be a string of 1 to 64 characters or a non-negative integer',
      id,
    );
  }
  for (const { field, kind, optional } of checks) {
    const present = frame[field];
    if (present === undefined && optional) continue;
    if (!fits(kind, present)) {
      const what = kind === "integer"
        ? "a non-negative integer"
        : kind === "object"
        ? "an object"
        : `a ${kind}`;
      throw invalid("bad_request", `Field "${field}" must be ${what}`, id);
    }
  }
  if ((type === "send" || type === "dm") && frame.key !== undefined && !isKey(frame.key)) {
    throw invalid("bad_request", 'Field "key" must be a string of 1 to 64 characters', id);
  }
  if (type === "hello" && frame.caps !== undefined && !isCaps(frame.caps)) {
    throw invalid(
      "bad_request",
      'Field "caps" must be a list of at most 16 names of 1 to 32 characters',
      id,
    );
  }
  return frame as unknown as ClientFrame;
}

function invalid(code: ErrorCode, message: string, id: RequestId | undefined): ProtocolError {
  return new ProtocolError(code, message, { cause: id });
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

/** A check of one field of a server frame: `undefined` when it fits, else what was expected. */
type Check = (value: unknown) => string | undefined;

const isText: Check = (value) => typeof value === "string" ? undefined : "a string";
const isFlag: Check = (value) => typeof value === "boolean" ? undefined : "a boolean";
const isCount: Check = (value) =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0
    ? undefined
    : "a non-negative integer";
const isNumber: Check = (value) =>
  typeof value === "number" && Number.isFinite(value) ? undefined : "a number";
const isId: Check = (value) =>
  isRequestId(value) ? undefined : "a string of 1 to 64 characters or a non-negative integer";

function optional(check: Check): Check {
  return (value) => value === undefined ? undefined : check(value);
}

function oneOf(...values: string[]): Check {
  return (value) =>
    typeof value === "string" && values.includes(value)
      ? undefined
      : `one of ${values.map((each) => `"${each}"`).join(", ")}`;
}

function listOf(check: Check, what: string): Check {
  return (value) => {
    if (!Array.isArray(value)) return `a list of ${what}`;
    for (const item of value) if (check(item) !== undefined) return `a list of ${what}`;
    return undefined;
  };
}

function shaped(shape: Record<string, Check>, what: string): Check {
  return (value) => {
    if (kindOf(value) !== "object") return what;
    const record = value as Record<string, unknown>;
    for (const [field, check] of Object.entries(shape)) {
      if (check(record[field]) !== undefined) return what;
    }
    return undefined;
  };
}

const MESSAGE_SHAPE: Record<string, Check> = {
  room: isText,
  from: isText,
  text: isText,
  ts: isText,
  seq: isCount,
  action: optional(isFlag),
  notice: optional(isFlag),
  history: optional(isFlag),
};

const isMessage: Check = shaped(
  { type: oneOf("message"), ...MESSAGE_SHAPE },
  "a list of messages",
);

const SERVER_SHAPES: Record<ServerFrame["type"], Record<string, Check>> = {
  welcome: {
    id: isId,
    v: isNumber,
    server: isText,
    name: isText,
    room: isText,
    members: listOf(isText, "names"),
    count: optional(isCount),
    rooms: listOf(
      shaped(
        {
          name: isText,
          seq: isCount,
          topic: isText,
          members: listOf(isText, "names"),
          count: optional(isCount),
        },
        "a room",
      ),
      "rooms",
    ),
    session: isText,
    resumed: isFlag,
    resumeGrace: isNumber,
    limits: shaped(
      { maxFrameBytes: isNumber, maxTextLength: isNumber, idleTimeout: isNumber },
      "the limits",
    ),
  },
  ack: {
    id: isId,
    room: optional(isText),
    seq: optional(isCount),
    ts: optional(isText),
    to: optional(isText),
    name: optional(isText),
    names: optional(listOf(isText, "names")),
    count: optional(isCount),
    ops: optional(listOf(isText, "names")),
    topicLock: optional(isFlag),
    topic: optional(isText),
    rooms: optional(
      listOf(shaped({ name: isText, members: isCount, topic: isText }, "a room"), "rooms"),
    ),
    messages: optional((value) =>
      Array.isArray(value) && value.every((item) => isMessage(item) === undefined)
        ? undefined
        : "a list of messages"
    ),
    duplicate: optional(isFlag),
    fingerprint: optional(isText),
    online: optional(isFlag),
    op: optional(isFlag),
    away: optional(isText),
    next: optional(isCount),
    awayMessages: optional((value) =>
      kindOf(value) === "object" &&
        Object.values(value as Record<string, unknown>).every((item) => typeof item === "string")
        ? undefined
        : "an object of strings"
    ),
    transfer: optional(isText),
    token: optional(isText),
    expires: optional(isText),
  },
  error: { id: optional(isId), code: isText, message: isText, ids: optional(listOf(isId, "ids")) },
  message: MESSAGE_SHAPE,
  dm: {
    from: isText,
    to: isText,
    text: isText,
    ts: isText,
    action: optional(isFlag),
    notice: optional(isFlag),
  },
  join: { room: isText, name: isText, op: optional(isFlag), ts: isText },
  leave: {
    room: isText,
    name: isText,
    reason: isText,
    message: optional(isText),
    by: optional(isText),
    ts: isText,
  },
  nick: { from: isText, to: isText, ts: isText },
  topic: { room: isText, topic: isText, from: isText, ts: isText },
  away: { name: isText, message: isText, ts: isText },
  ping: {},
  challenge: { id: isId, nonce: isText },
  offer: {
    transfer: isText,
    from: isText,
    to: isText,
    name: isText,
    size: isCount,
    mime: isText,
    sha256: isText,
    expires: isText,
  },
  transfer: {
    transfer: isText,
    state: oneOf("accepted", "declined", "received", "cancelled", "expired"),
    by: isText,
    leg: optional(isText),
    token: optional(isText),
    ok: optional(isFlag),
    reason: optional(isText),
  },
  bye: { reason: isText, message: isText },
};

/**
 * Parses one line sent by a server into a frame, checking every field the
 * client relies on, nested lists included: a client treats whatever a server
 * sends as untrusted. Unknown fields are ignored, so later versions can add
 * optional ones.
 *
 * @example Refuse a message without text
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { parseServerFrame } from "./frames.ts";
 *
 * throws(() => parseServerFrame('{"type":"message","room":"#lobby","from":"a","ts":"","seq":1}'));
 * ```
 *
 * @param line One frame, without its newline.
 * @returns The frame.
 * @throws {ProtocolError} With `bad_json`, `bad_request` or `unknown_type`, and
 * the request id in `cause` when one could be read (so an answer that does not
 * validate can fail its request instead of leaving it waiting).
 */
export function parseServerFrame(line: string): ServerFrame {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new ProtocolError("bad_json", "Frame is not valid JSON");
  }
  if (kindOf(value) !== "object") {
    throw new ProtocolError("bad_json", "Frame is not a JSON object");
  }
  const frame = value as Record<string, unknown>;
  const id = isRequestId(frame.id) ? frame.id : undefined;
  if (typeof frame.type !== "string") {
    throw new ProtocolError("bad_request", 'Field "type" must be a string', { cause: id });
  }
  const shape = Object.hasOwn(SERVER_SHAPES, frame.type)
    ? SERVER_SHAPES[frame.type as ServerFrame["type"]]
    : undefined;
  if (shape === undefined) {
    throw new ProtocolError(
      "unknown_type",
      `Unknown frame type ${JSON.stringify(frame.type).slice(0, 80)}`,
      { cause: id },
    );
  }
  for (const [field, check] of Object.entries(shape)) {
    const expected = check(frame[field]);
    if (expected !== undefined) {
      throw new ProtocolError(
        "bad_request",
        `Field "${field}" of "${frame.type}" must be ${expected}`,
        { cause: id },
      );
    }
  }
  return frame as unknown as ServerFrame;
}
