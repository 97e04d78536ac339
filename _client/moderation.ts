/**
 * The requests operators make: kick, ban, unban and mute, built from what
 * the caller gives (optional fields left out when not given).
 *
 * @module
 */

import type { BanFrame, KickFrame, MuteFrame, UnbanFrame } from "../protocol/frames.ts";

/** How long and why, for a ban or a mute. */
export interface Sanction {
  /** How long, in seconds; for ever when absent. */
  duration?: number;
  /** Why, shown to everyone. */
  reason?: string;
}

/** The `kick` request for `name`. */
export function kickRequest(name: string, reason: string | undefined): Omit<KickFrame, "id"> {
  return reason === undefined ? { type: "kick", name } : { type: "kick", name, reason };
}

/** The `ban` request for `target` (a name, `key:…` or `ip:…`). */
export function banRequest(target: string, sanction: Sanction): Omit<BanFrame, "id"> {
  const frame: Omit<BanFrame, "id"> = { type: "ban", target };
  if (sanction.duration !== undefined) frame.duration = sanction.duration;
  if (sanction.reason !== undefined) frame.reason = sanction.reason;
  return frame;
}

/** The `unban` request for `target`. */
export function unbanRequest(target: string): Omit<UnbanFrame, "id"> {
  return { type: "unban", target };
}

/** The `mute` request for `name`; `duration: 0` lifts a mute. */
export function muteRequest(name: string, sanction: Sanction): Omit<MuteFrame, "id"> {
  const frame: Omit<MuteFrame, "id"> = { type: "mute", name };
  if (sanction.duration !== undefined) frame.duration = sanction.duration;
  if (sanction.reason !== undefined) frame.reason = sanction.reason;
  return frame;
}
