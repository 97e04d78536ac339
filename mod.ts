/**
 * A chat server and client in one: start a server with {@linkcode serve},
 * join it with {@linkcode connect}, and script whole conversations, for
 * example inside `Deno.test`. People join the same server with
 * `chat connect` or plain `nc`.
 *
 * @example A conversation in a test
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { connect, serve } from "./mod.ts";
 *
 * await using server = await serve({ hostname: "127.0.0.1", port: 0 });
 * const port = server.addr.port;
 * await using alice = await connect({ hostname: "127.0.0.1", port, name: "alice" });
 * await using bob = await connect({ port, name: "bob" });
 *
 * const sent = await alice.send("你好, bob 👋");
 * const got = await bob.next("message", { timeout: 2000 });
 * deepEqual(got.seq, sent.seq);
 *
 * await alice.dm("bob", "psst");
 * deepEqual((await bob.next("dm")).text, "psst");
 * deepEqual(await alice.who(), ["alice", "bob"]);
 * await alice.close();
 * deepEqual((await bob.next("leave")).reason, "quit");
 * ```
 *
 * @module
 */

export { serve, StorageError } from "./server.ts";
export type { ChatServer, ServeOptions } from "./server.ts";
export { ChatClient, connect, createIdentity, loadIdentity } from "./client.ts";
export type {
  AcceptOptions,
  ChatEvent,
  ChatEventType,
  CloseOptions,
  ConnectOptions,
  DmOptions,
  ErrorEvent,
  HistoryOptions,
  Identity,
  IncomingOffer,
  JoinedRoom,
  JoinOptions,
  KickOptions,
  LeaveOptions,
  NextOptions,
  ReceivedFile,
  ReconnectedEvent,
  ReconnectingEvent,
  ReconnectOptions,
  RequestOptions,
  Roster,
  SearchOptions,
  SearchPage,
  SendFileOptions,
  SendOptions,
  SentDm,
  SentFile,
  SentMessage,
  TlsOptions,
  WhoisResult,
  WhoOptions,
} from "./client.ts";
export {
  ConnectionError,
  type ConnectionErrorCode,
  type ErrorCode,
  ProtocolError,
} from "./protocol/errors.ts";
export type {
  AwayEvent,
  ByeFrame,
  ByeReason,
  DmEvent,
  FileOfferEvent,
  JoinEvent,
  LeaveEvent,
  LeaveReason,
  MessageEvent,
  NickEvent,
  RoomInfo,
  TopicEvent,
  TransferEvent,
} from "./protocol/frames.ts";
export { DEFAULT_LIMITS, type Limits } from "./protocol/limits.ts";
