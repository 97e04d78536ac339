/**
 * The JSON dialect: one frame per line, as the `chat` client and the library
 * speak (see protocol/PROTOCOL.md).
 *
 * @module
 */

import { ProtocolError } from "../../protocol/errors.ts";
import type { LeaveReason, RequestId } from "../../protocol/frames.ts";
import { parseClientFrame, requestIdOf } from "../../protocol/frames.ts";
import { type DecodedLine, LineDecoder } from "../../protocol/line_decoder.ts";
import type { Outbound, OutboundRun, Session, ViewSink } from "../core.ts";
import type { Dialect, DialectHost } from "./dialect.ts";

const encoder = new TextEncoder();
const PING = encoder.encode('{"type":"ping"}\n');

/**
 * A `bye` frame.
 *
 * @param reason Why the connection ends.
 * @param message What to tell.
 * @returns The line.
 */
export function jsonBye(reason: LeaveReason | "timeout", message: string): Uint8Array {
  return encoder.encode(JSON.stringify({ type: "bye", reason, message }) + "\n");
}

/**
 * One `rate_limited` error that answers the requests whose refusals were held back.
 *
 * @param message What to tell.
 * @param ids The requests it answers.
 * @returns The line.
 */
export function jsonRefusals(message: string, ids: RequestId[]): Uint8Array {
  return encoder.encode(
    JSON.stringify({
      type: "error",
      code: "rate_limited",
      message,
      ...(ids.length > 0 ? { ids } : {}),
    }) + "\n",
  );
}

/** JSON frames, one a line. */
export class JsonDialect implements Dialect {
  readonly decoder: LineDecoder;
  readonly files = true;
  readonly ping: Uint8Array = PING;
  #host: DialectHost;
  #frames = 0;

  /**
   * Speaks JSON over a connection.
   *
   * @param host The connection.
   */
  constructor(host: DialectHost) {
    this.#host = host;
    this.decoder = new LineDecoder({ maxBytes: host.limits.maxFrameBytes });
  }

  line(line: DecodedLine): Promise<void> | undefined {
    const { core, session } = this.#host;
    if (!line.ok) {
      core.reject(session, line.code, line.message);
      return;
    }
    if (line.text.trim() === "") return;
    let frame;
    try {
      frame = parseClientFrame(line.text);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      core.reject(session, error.code, error.message, requestIdOf(error));
      return;
    }
    if (frame.type === "data") {
      if (this.#frames++ > 0) {
        // A key proof waiting for its answer fails first.
        core.receive(session, frame);
        core.reject(session, "bad_request", '"data" must be the first frame of a new connection');
        return;
      }
      // The connection stays counted (limits, shutdown) until its transfer lets it go.
      const transfer = this.#host.handOff(frame.token);
      if (transfer !== undefined) return transfer;
      core.reject(session, "no_such_transfer", "No transfer has that token");
      this.#host.close();
      return;
    }
    this.#frames++;
    return core.receive(session, frame);
  }

  render(out: Outbound): Uint8Array {
    return out.json;
  }

  renderRun(
    run: OutboundRun,
    start: number,
    end: number,
    _session: Session,
    sink: ViewSink,
  ): void {
    run.json(start, end, sink);
  }

  bye(reason: LeaveReason | "timeout", message: string): Uint8Array {
    return jsonBye(reason, message);
  }

  refusals(message: string, ids: RequestId[]): Uint8Array {
    return jsonRefusals(message, ids);
  }
}
