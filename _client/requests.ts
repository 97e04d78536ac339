/**
 * Requests and their answers: id allocation, the map of requests waiting
 * for an answer, matching `ack` and `error` frames to them, aborting, and
 * re-sending what was never answered after a reconnect.
 *
 * @module
 */

import { ConnectionError, ProtocolError } from "../protocol/errors.ts";
import type {
  AckFrame,
  AuthFrame,
  ClientFrame,
  DataFrame,
  HelloFrame,
  PongFrame,
  RequestId,
} from "../protocol/frames.ts";

/** The client frames that are requests answered by `ack` or `error` (`hello` has its own path). */
export type RequestFrame = Exclude<ClientFrame, HelloFrame | AuthFrame | PongFrame | DataFrame>;

type WithoutId<F> = F extends unknown ? Omit<F, "id"> : never;

/** A request as built: its frame without the id, which is given when it is sent. */
export type Request = WithoutId<RequestFrame>;

/** A request waiting for its answer. */
interface Pending {
  /** The frame as sent, id included: re-sent after a reconnect. Absent for `hello`. */
  frame: RequestFrame | undefined;
  resolve: (ack: AckFrame) => void;
  reject: (error: Error) => void;
}

/** Where frames go: a link. */
export interface FrameSink {
  write(frame: ClientFrame): void;
  readonly reading: Promise<void>;
}

/** A field an answer must carry: what a server says is checked, never assumed. */
export function answered<K extends "room" | "seq" | "ts" | "to" | "name" | "transfer" | "token">(
  ack: AckFrame,
  field: K,
): NonNullable<AckFrame[K]> {
  const value = ack[field];
  if (value === undefined) {
    throw new ConnectionError("invalid_frame", `The server's answer has no "${field}"`);
  }
  return value as NonNullable<AckFrame[K]>;
}

/** `promise`, or the signal's reason as soon as it aborts (`onAbort` runs then). */
export function abortable<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  onAbort: () => void,
): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) {
    onAbort();
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const abort = () => {
      onAbort();
      reject(signal.reason);
    };
    signal.addEventListener("abort", abort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", abort));
  });
}

/** The requests of one client, across its links. */
export class Requests {
  #nextId = 0;
  #pending = new Map<number, Pending>();

  /** A new request id. */
  allocate(): number {
    return ++this.#nextId;
  }

  /**
   * Waits for the answer to `hello` under `id`: never re-sent, and dropped
   * with {@linkcode Requests.drop} once the handshake ends.
   */
  expect(id: number): Promise<AckFrame> {
    return new Promise<AckFrame>((resolve, reject) =>
      this.#pending.set(id, { frame: undefined, resolve, reject })
    );
  }

  /**
   * Sends a request through `sink` (or holds it, to be re-sent after a
   * reconnect, when there is none); `onAck` runs as soon as its ack is read,
   * before the frames after it.
   */
  send(
    frame: Request,
    sink: FrameSink | undefined,
    signal: AbortSignal | undefined,
    onAck?: (ack: AckFrame) => void,
  ): Promise<AckFrame> {
    const id = this.allocate();
    const withId: RequestFrame = { ...frame, id };
    const promise = new Promise<AckFrame>((resolve, reject) =>
      this.#pending.set(id, {
        frame: withId,
        resolve: onAck === undefined ? resolve : (ack) => {
          try {
            onAck(ack);
            resolve(ack);
          } catch (error) {
            reject(error);
          }
        },
        reject,
      })
    );
    sink?.write(withId);
    return abortable(promise, signal, () => this.#pending.delete(id));
  }

  /**
   * A request on one link, outside the re-send queue: it fails with `closed`
   * when that link ends or `stop` aborts.
   */
  direct(sink: FrameSink, frame: Request, stop: AbortSignal): Promise<AckFrame> {
    const id = this.allocate();
    return new Promise<AckFrame>((resolve, reject) => {
      const fail = () => {
        if (!this.#pending.delete(id)) return;
        reject(new ConnectionError("closed", "Connection closed while catching up"));
      };
      const withId: RequestFrame = { ...frame, id };
      this.#pending.set(id, { frame: withId, resolve, reject });
      sink.write(withId);
      sink.reading.then(fail);
      stop.addEventListener("abort", fail, { once: true });
    });
  }

  /** Settles the request `id` with an answer; `false` when no request waits under it. */
  settle(id: RequestId | undefined, answer: AckFrame | ProtocolError): boolean {
    const pending = typeof id === "number" ? this.#pending.get(id) : undefined;
    if (pending === undefined || typeof id !== "number") return false;
    this.#pending.delete(id);
    if (answer instanceof ProtocolError) pending.reject(answer);
    else pending.resolve(answer);
    return true;
  }

  /** Stops waiting for `id`. */
  drop(id: number): void {
    this.#pending.delete(id);
  }

  /** Sends every unanswered request again, in order (keys make sends safe to repeat). */
  resend(sink: FrameSink): void {
    for (const [, pending] of [...this.#pending].sort(([a], [b]) => a - b)) {
      if (pending.frame !== undefined) sink.write(pending.frame);
    }
  }

  /** Fails every request still waiting. */
  rejectAll(error: Error): void {
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }
}
