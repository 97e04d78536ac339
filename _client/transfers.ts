/**
 * File transfers: offers received (accept streams the file to a safe name
 * and keeps it only if its size and hash match) and files sent (one data
 * connection per receiver who accepts). The server only passes bytes along.
 *
 * @module
 */

import { ConnectionError, ProtocolError } from "../protocol/errors.ts";
import type { AckFrame, FileOfferEvent, TransferEvent } from "../protocol/frames.ts";
import {
  downloadsDir,
  hashFile,
  mediaType,
  moveToFreeName,
  safeFileName,
  sha256,
} from "./files.ts";
import { type Endpoint, openData } from "./link.ts";
import { writeAll } from "../_common/write_all.ts";
import { answered, type Request } from "./requests.ts";
import type {
  AcceptOptions,
  ConnectOptions,
  IncomingOffer,
  ReceivedFile,
  SendFileOptions,
  SentFile,
} from "./types.ts";
import { basename, join } from "node:path";
import { statfs } from "node:fs/promises";

const STALL_TIMEOUT = 30_000;

/** What transfers need from the client. */
export interface TransferHost {
  readonly options: ConnectOptions;
  readonly endpoint: Endpoint;
  /** The client's name now. */
  readonly name: string;
  request(
    frame: Request,
    signal: AbortSignal | undefined,
    onAck?: (ack: AckFrame) => void,
  ): Promise<AckFrame>;
}

/**
 * Refuses an offer larger than the free space where it would be saved (when
 * the system can tell; without the `sys` permission for `statfs` it cannot).
 */
async function checkFreeSpace(dir: string, offer: FileOfferEvent): Promise<void> {
  let free: number;
  try {
    const stats = await statfs(dir);
    free = Number(stats.bavail) * Number(stats.bsize);
  } catch {
    return;
  }
  if (Number.isFinite(free) && offer.size > free) {
    throw new ProtocolError(
      "transfer_failed",
      `Cannot accept "${offer.name}": it has ${offer.size} bytes but only ${free} are free in "${dir}"`,
    );
  }
}

/** The transfers of one client, both ways. */
export class Transfers {
  readonly #host: TransferHost;
  /** Files being sent, by transfer id: each gets the transfer events of its offer. */
  #outgoing = new Map<string, (event: TransferEvent) => void>();
  /** Files being received: closing stops them and waits until their temporary files are gone. */
  #receiving = new Map<AbortController, Promise<unknown>>();

  constructor(host: TransferHost) {
    this.#host = host;
  }

  /** A `transfer` event: the file it concerns, if it is one being sent, hears of it. */
  update(event: TransferEvent): void {
    this.#outgoing.get(event.transfer)?.(event);
  }

  /** The client is leaving: files still being offered, sent or received stop. */
  async stopAll(): Promise<void> {
    for (const transfer of [...this.#outgoing.keys()]) {
      this.#host.request({ type: "cancel", transfer }, undefined).catch(() => {});
      this.#outgoing.get(transfer)?.({
        type: "transfer",
        transfer,
        state: "cancelled",
        by: this.#host.name,
        reason: "you left",
      });
    }
    // Files being received stop too, and their temporary files go.
    for (const stop of this.#receiving.keys()) stop.abort();
    await Promise.all(this.#receiving.values());
  }

  /** The client ended: files still being sent fail. */
  connectionClosed(): void {
    for (const [transfer, handle] of this.#outgoing) {
      handle({
        type: "transfer",
        transfer,
        state: "cancelled",
        by: this.#host.name,
        reason: "the connection closed",
      });
    }
  }

  #openData(token: string, signal?: AbortSignal): Promise<{ conn: Deno.Conn; rest: Uint8Array }> {
    return openData(this.#host.endpoint, token, this.#host.options.timeout ?? 10_000, signal);
  }

  /** An offer as an event, with its `accept` and `decline`. */
  incoming(offer: FileOfferEvent): IncomingOffer {
    return {
      ...offer,
      accept: (options = {}) => this.#receive(offer, options),
      decline: async () => {
        await this.#host.request({ type: "decline", transfer: offer.transfer }, undefined);
      },
    };
  }

  #receive(offer: FileOfferEvent, options: AcceptOptions): Promise<ReceivedFile> {
    // Closing the client stops the transfer and waits until its temporary file is gone.
    const stop = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    const receiving = this.#receiveInto(offer, { ...options, signal }, options.signal);
    this.#receiving.set(stop, receiving.catch(() => {}));
    return receiving.finally(() => this.#receiving.delete(stop));
  }

  async #receiveInto(
    offer: FileOfferEvent,
    options: AcceptOptions & { signal: AbortSignal },
    callerSignal: AbortSignal | undefined,
  ): Promise<ReceivedFile> {
    const dir = options.dir ?? downloadsDir();
    await Deno.mkdir(dir, { recursive: true });
    await checkFreeSpace(dir, offer);
    const ack = await this.#host.request(
      { type: "accept", transfer: offer.transfer },
      options.signal,
    );
    const token = answered(ack, "token");
    // The temporary name is ours: nothing the server chose becomes part of a path.
    const random = new Uint8Array(crypto.getRandomValues(new Uint8Array(12))).toHex();
    const temporary = join(dir, `.chat-${random}.part`);
    const { conn, rest } = await this.#openData(token, options.signal);
    const abort = () =>
      this.#host.request({ type: "cancel", transfer: offer.transfer }, undefined).catch(() => {});
    options.signal.addEventListener("abort", abort, { once: true });
    const stallTimeout = options.stallTimeout ?? STALL_TIMEOUT;
    let stalled = false;
    let stallTimer: ReturnType<typeof setTimeout> | undefined;
    const watch = () => {
      clearTimeout(stallTimer);
      stallTimer = setTimeout(() => {
        stalled = true;
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }, stallTimeout);
    };
    const cut = () => {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    };
    options.signal.addEventListener("abort", cut, { once: true });
    const hash = sha256();
    let received = 0;
    let reported = 0;
    let closed = false;
    try {
      {
        using file = await Deno.open(temporary, { write: true, createNew: true });
        const keep = async (bytes: Uint8Array) => {
          const part = bytes.subarray(0, Math.max(0, offer.size - received));
          hash.update(part);
          await writeAll(file, part);
          received += part.length;
          if (
            options.onProgress && (performance.now() - reported > 100 || received === offer.size)
          ) {
            reported = performance.now();
            options.onProgress(received, offer.size);
          }
        };
        if (rest.length > 0) await keep(rest);
        const buffer = new Uint8Array(256 * 1024);
        while (received < offer.size) {
          watch();
          let read: number | null;
          try {
            read = await conn.read(buffer);
          } catch (error) {
            if (stalled || options.signal.aborted) read = null;
            else throw error;
          }
          if (read === null) break;
          await keep(buffer.subarray(0, read));
        }
        clearTimeout(stallTimer);
      }
      if (options.signal.aborted) throw options.signal.reason;
      const digest = hash.hex();
      if (received !== offer.size || digest !== offer.sha256) {
        const why = stalled
          ? `nothing arrived for ${stallTimeout / 1000} s (${received} of ${offer.size} bytes)`
          : received !== offer.size
          ? `only ${received} of ${offer.size} bytes arrived`
          : "its SHA-256 does not match the offer";
        // Told, not awaited: a server that never answers must not hold the result back.
        this.#host.request({ type: "received", transfer: offer.transfer, ok: false }, undefined)
          .catch(() => {});
        throw new ProtocolError("transfer_failed", `"${offer.name}" was not saved: ${why}`);
      }
      const path = await moveToFreeName(temporary, dir, safeFileName(offer.name));
      closed = true;
      this.#host.request({ type: "received", transfer: offer.transfer, ok: true }, undefined)
        .catch(() => {});
      return { path, size: received, sha256: digest };
    } catch (error) {
      if (!closed) await Deno.remove(temporary).catch(() => {});
      if (callerSignal?.aborted) throw callerSignal.reason;
      if (options.signal.aborted) {
        throw new ProtocolError(
          "transfer_failed",
          `"${offer.name}" was not saved: the client closed`,
        );
      }
      throw error;
    } finally {
      clearTimeout(stallTimer);
      options.signal.removeEventListener("abort", abort);
      options.signal.removeEventListener("abort", cut);
      cut();
    }
  }

  /** Offers a file and streams it to everyone who accepts (see `ChatClient.sendFile`). */
  async sendFile(
    to: string,
    source: string | URL | Uint8Array | ReadableStream<Uint8Array>,
    options: SendFileOptions = {},
  ): Promise<SentFile> {
    // What goes out: the bytes, or a file (a stream is spooled to a temporary one first).
    let content: Uint8Array | string;
    let spooled: string | undefined;
    if (source instanceof Uint8Array) content = source;
    else if (source instanceof ReadableStream) {
      spooled = content = await Deno.makeTempFile({ prefix: "chat-send-" });
      using file = await Deno.open(content, { write: true });
      for await (const chunk of source) await writeAll(file, chunk);
    } else content = source instanceof URL ? source.pathname : source;
    try {
      const name = options.name ??
        (typeof content === "string" && spooled === undefined ? basename(content) : "file");
      let size: number;
      let digest: string;
      if (typeof content !== "string") {
        const hash = sha256();
        hash.update(content);
        size = content.length;
        digest = hash.hex();
      } else {
        ({ size, sha256: digest } = await hashFile(content));
      }
      const direct = !to.startsWith("#");
      const done = Promise.withResolvers<SentFile>();
      const delivered: string[] = [];
      const legs = new Set<Promise<void>>();
      let transfer = "";
      const fail = (message: string) => done.reject(new ProtocolError("transfer_failed", message));
      const handle = (event: TransferEvent) => {
        switch (event.state) {
          case "accepted": {
            // A broken leg is reported by the server ("cancelled"), which knows why.
            const leg = this.#stream(event, content, size, options).catch(() => {});
            legs.add(leg);
            return;
          }
          case "declined":
            if (direct) fail(`${event.by} declined "${name}"`);
            return;
          case "received":
            if (event.ok) delivered.push(event.by);
            if (direct) {
              if (event.ok) done.resolve({ transfer, size, sha256: digest, to: delivered });
              else fail(`${event.by} did not receive "${name}" whole`);
            }
            return;
          case "cancelled":
            if (direct || event.by === this.#host.name) {
              fail(`The transfer of "${name}" was cancelled: ${event.reason ?? ""}`.trim());
            }
            return;
          case "expired":
            if (direct || delivered.length === 0) fail(`Nobody accepted "${name}" in time`);
            else done.resolve({ transfer, size, sha256: digest, to: delivered });
            return;
        }
      };
      let offerFailed: { error: unknown } | undefined;
      await this.#host.request(
        { type: "offer", to, name, size, mime: options.mime ?? mediaType(name), sha256: digest },
        options.signal,
        (ack) => {
          // At once: an answer may follow the ack in the same read, before this function resumes.
          transfer = answered(ack, "transfer");
          this.#outgoing.set(transfer, handle);
          try {
            options.onOffer?.(transfer);
          } catch (error) {
            offerFailed = { error };
          }
        },
      );
      if (offerFailed !== undefined) throw offerFailed.error;
      const cancel = () => {
        this.#host.request({ type: "cancel", transfer }, undefined).catch(() => {});
        done.reject(options.signal?.reason);
      };
      options.signal?.addEventListener("abort", cancel, { once: true });
      try {
        return await done.promise;
      } finally {
        options.signal?.removeEventListener("abort", cancel);
        this.#outgoing.delete(transfer);
        await Promise.allSettled(legs);
      }
    } finally {
      if (spooled !== undefined) await Deno.remove(spooled).catch(() => {});
    }
  }

  /** Streams one leg of an outgoing file to the server. */
  async #stream(
    event: TransferEvent,
    content: Uint8Array | string,
    size: number,
    options: SendFileOptions,
  ): Promise<void> {
    if (event.token === undefined) {
      throw new ConnectionError("invalid_frame", 'The server\'s "accepted" event has no "token"');
    }
    const { conn } = await this.#openData(event.token, options.signal);
    let sent = 0;
    let reported = 0;
    const progress = () => {
      if (options.onProgress && (performance.now() - reported > 100 || sent === size)) {
        reported = performance.now();
        options.onProgress(sent, size, event.by);
      }
    };
    try {
      if (typeof content !== "string") {
        for (let offset = 0; offset < content.length; offset += 256 * 1024) {
          const chunk = content.subarray(offset, offset + 256 * 1024);
          await writeAll(conn, chunk);
          sent += chunk.length;
          progress();
        }
      } else {
        using file = await Deno.open(content);
        const buffer = new Uint8Array(256 * 1024);
        while (sent < size) {
          const read = await file.read(buffer);
          if (read === null) break;
          await writeAll(conn, buffer.subarray(0, read));
          sent += read;
          progress();
        }
      }
    } finally {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }
}
