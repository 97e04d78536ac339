/**
 * What a stream door's dialect is: how lines become requests for the core,
 * and how the core's events become bytes.
 *
 * @module
 */

import type { LeaveReason, RequestId } from "../../protocol/frames.ts";
import type { Limits } from "../../protocol/limits.ts";
import type { DecodedLine, LineDecoder } from "../../protocol/line_decoder.ts";
import type { Core, Outbound, OutboundRun, Session, ViewSink } from "../core.ts";

/** What a dialect may ask of the connection that carries it. */
export interface DialectHost {
  /** The core. */
  readonly core: Core;
  /** The limits in force. */
  readonly limits: Limits;
  /** The session the connection carries now. */
  readonly session: Session;
  /** Whether the connection is over its line budget (then prompts are held back). */
  readonly over: boolean;
  /** Queues bytes. */
  write(bytes: Uint8Array): void;
  /** Queues a refusal, unless refusals are being held back. */
  refuse(bytes: Uint8Array): void;
  /**
   * Hands the socket over to a file transfer: resolves once the transfer has
   * closed it, or `undefined` when the token opened nothing.
   */
  handOff(token: string): Promise<void> | undefined;
  /** Sends what is queued, then closes. */
  close(): void;
}

/** One way of speaking over a stream of lines. */
export interface Dialect {
  /** Splits the bytes into lines. */
  readonly decoder: LineDecoder;
  /** Whether its users can take part in file transfers. */
  readonly files: boolean;
  /** What to send a quiet connection to see if it is still there, if anything. */
  readonly ping: Uint8Array | undefined;
  /** Handles one line; a promise when the lines after it must wait. */
  line(line: DecodedLine): Promise<void> | undefined;
  /** An event in this dialect, or `null` when it has nothing to show. */
  render(out: Outbound, session: Session): Uint8Array | null;
  /** Hands `sink` events `start` to `end` (excluded) of a run in this dialect, as shared bytes. */
  renderRun(run: OutboundRun, start: number, end: number, session: Session, sink: ViewSink): void;
  /** A goodbye before the connection closes. */
  bye(reason: LeaveReason | "timeout", message: string): Uint8Array;
  /** One notice that answers refusals held back. */
  refusals(message: string, ids: RequestId[]): Uint8Array;
}
