/**
 * Private messages: delivered at once, kept for a recipient who is
 * reconnecting, and answered once per idempotency key.
 *
 * @module
 */

import type { AckFrame, DmEvent, DmFrame } from "../protocol/frames.ts";
import type { Names } from "./names.ts";
import { Outbound } from "./outbound.ts";
import type { Registered } from "./session.ts";
import type { Shared } from "./shared.ts";
import { isoNow } from "./clock.ts";

/** Private messages between sessions. */
export class Direct {
  #shared: Shared;
  #names: Names;

  /**
   * Creates the private-message part.
   *
   * @param shared The core's shared state.
   * @param names Who is called what.
   */
  constructor(shared: Shared, names: Names) {
    this.#shared = shared;
    this.#names = names;
  }

  /**
   * Handles `dm`.
   *
   * @param session Who sends.
   * @param frame The request.
   */
  dm(session: Registered, frame: DmFrame): void | Promise<void> {
    const shared = this.#shared;
    if (frame.key !== undefined) {
      const seen = session.dmAck(frame.key);
      if (seen !== undefined) {
        return shared.ack(session, { ...seen, id: frame.id, duplicate: true });
      }
    }
    const target = this.#names.find(frame.to);
    const elsewhere = target === undefined ? shared.cluster?.find(frame.to) : undefined;
    if (target === undefined && elsewhere === undefined) {
      return shared.fail(session, frame.id, "no_such_user", `Nobody here is called "${frame.to}"`);
    }
    if (!shared.checkText(session, frame.id, frame.text)) return;
    const ts = isoNow();
    const from = session.name;
    const to = target?.name ?? elsewhere!.name;
    const dm: DmEvent = frame.action === true
      ? { type: "dm", from, to, text: frame.text, ts, action: true }
      : { type: "dm", from, to, text: frame.text, ts };
    if (frame.notice === true) dm.notice = true;
    const ack: AckFrame = { type: "ack", id: frame.id, to, ts };
    // The automatic reply IRC gives: the sender learns the recipient is away (never for a notice).
    const away = target?.away ?? elsewhere?.away ?? "";
    if (away !== "" && frame.notice !== true) ack.away = away;
    if (target === undefined) {
      // On another node: its node delivers it (or keeps it while they reconnect).
      return shared.cluster!.dm(dm).then((sent) => {
        if (!sent) {
          return shared.fail(
            session,
            frame.id,
            "storage_failed",
            "The server cannot reach its database; try again",
          );
        }
        if (frame.key !== undefined) session.rememberDm(frame.key, ack);
        shared.ack(session, ack);
      });
    }
    if (target.peer === undefined) shared.keep(target, dm);
    else target.peer.deliver(new Outbound(dm));
    if (frame.key !== undefined) session.rememberDm(frame.key, ack);
    shared.ack(session, ack);
  }
}
