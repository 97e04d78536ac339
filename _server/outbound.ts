/**
 * An event on its way out: a server frame with its encodings, made at most
 * once however many peers receive it.
 *
 * @module
 */

import type { ServerFrame } from "../protocol/frames.ts";
import { formatFrame } from "../protocol/text_format.ts";

const encoder = new TextEncoder();

function render(frame: ServerFrame, room: string | undefined): Uint8Array | null {
  const text = formatFrame(frame, { room });
  return text === undefined ? null : encoder.encode(text.replaceAll("\n", "\r\n") + "\r\n");
}

/**
 * A server frame with its encodings, made at most once however many peers
 * receive it.
 */
export class Outbound {
  /** The frame. */
  readonly frame: ServerFrame;
  #json: Uint8Array | undefined;
  #text: Uint8Array | null | undefined;
  /** A room message as text with its room named, for readers typing into another room. */
  #tagged: Uint8Array | null | undefined;
  #webSocketText: string | undefined;

  /**
   * Wraps a frame.
   *
   * @param frame The frame to send.
   */
  constructor(frame: ServerFrame) {
    this.frame = frame;
  }

  /** The frame as one line of JSON. */
  get json(): Uint8Array {
    return this.#json ??= encoder.encode(JSON.stringify(this.frame) + "\n");
  }

  /** The frame as the text of one WebSocket message (JSON, no newline). */
  get webSocketText(): string {
    return this.#webSocketText ??= JSON.stringify(this.frame);
  }

  /**
   * The frame as text lines for `nc` users, or `null` when there is nothing to
   * show. A room message is tagged with its room unless the reader types into
   * that room; each of the two forms is rendered at most once.
   *
   * @param room The room the reader types into.
   * @returns The bytes to send.
   */
  text(room: string | undefined): Uint8Array | null {
    const frame = this.frame;
    if (frame.type === "message" && frame.room !== room) {
      if (this.#tagged === undefined) this.#tagged = render(frame, "");
      return this.#tagged;
    }
    if (this.#text === undefined) {
      this.#text = render(frame, frame.type === "message" ? frame.room : undefined);
    }
    return this.#text;
  }
}
