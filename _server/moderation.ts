/**
 * Bans, mutes and kicks: what operators order, what is in force, and the one
 * wording every refusal uses.
 *
 * @module
 */

import type { BanFrame, KickFrame, MuteFrame, RequestId, UnbanFrame } from "../protocol/frames.ts";
import { nameKey } from "../protocol/names.ts";
import {
  type AddressRange,
  format as formatAddress,
  inRange,
  parseAddress,
  parseAddressRange,
} from "./address.ts";
import type { Names } from "./names.ts";
import { Outbound } from "./outbound.ts";
import type { Registered, Session } from "./session.ts";
import type { Shared } from "./shared.ts";
import type { Ban, BanKind } from "./storage.ts";

/** Longest ban or mute with an end: a century. */
const MAX_SANCTION_SECONDS = 100 * 365 * 86_400;

/**
 * How long a ban lasts, and why, as every refusal says it: `" until
 * 2030-01-01 12:00 UTC: spam"`, or `" for ever"` (left out when `forEver` is
 * `false`).
 *
 * @param ban The ban.
 * @param forEver Whether to say that a ban without an end lasts for ever.
 * @returns The words after "banned" or "muted".
 */
export function banTerms(ban: Ban, forEver = true): string {
  const until = ban.until === null
    ? (forEver ? " for ever" : "")
    : ` until ${ban.until.slice(0, 16).replace("T", " ")} UTC`;
  return `${until}${ban.reason ? `: ${ban.reason}` : ""}`;
}

/** The bans and mutes in force, and the operators' orders. */
export class Moderation {
  #shared: Shared;
  #names: Names;
  #bans = new Map<string, Ban>();
  /** How many of them are mutes: none, and a message is not checked against them. */
  #mutes = 0;
  /** Parsed `ip` ban values. */
  #ranges = new Map<string, AddressRange>();

  /**
   * Loads the bans.
   *
   * @param shared The core's shared state.
   * @param names Who is called what.
   * @param bans The bans in force, as stored.
   */
  constructor(shared: Shared, names: Names, bans: readonly Ban[]) {
    this.#shared = shared;
    this.#names = names;
    this.#keep(bans);
  }

  #keep(bans: readonly Ban[]): void {
    this.#bans.clear();
    this.#mutes = 0;
    for (const ban of bans) this.#set(ban);
  }

  #set(ban: Ban): void {
    const key = `${ban.kind}:${ban.value}`;
    if (ban.kind === "mute" && !this.#bans.has(key)) this.#mutes++;
    this.#bans.set(key, ban);
  }

  #delete(key: string): void {
    if (this.#bans.delete(key) && key.startsWith("mute:")) this.#mutes--;
  }

  async #load(): Promise<void> {
    this.#keep(await this.#shared.store.bans());
    this.#shared.cluster?.bansChanged();
  }

  /**
   * Reads the bans again (another node changed them) and ends the sessions
   * here that a ban now covers.
   */
  async reload(): Promise<void> {
    try {
      this.#keep(await this.#shared.store.bans());
    } catch {
      return;
    }
    for (const other of [...this.#shared.sessions]) {
      if (other.gone || !other.registered()) continue;
      const ban = [...this.#bans.values()].find((ban) =>
        ban.kind !== "mute" && this.#matches(other, ban)
      );
      if (ban !== undefined) this.#eject(other, "banned", `Banned by ${ban.by}${banTerms(ban)}`);
    }
  }

  /**
   * Ends a session on an operator's order given on another node.
   *
   * @param target The session.
   * @param reason Kicked or banned.
   * @param message What it is told.
   */
  eject(target: Session, reason: "kicked" | "banned", message: string): void {
    this.#eject(target, reason, message);
  }

  /**
   * The ban in force for a name key, fingerprint, address or mute, if any.
   *
   * @param kind What it applies to.
   * @param value The name key, fingerprint or address.
   * @returns The ban.
   */
  banned(kind: BanKind, value: string | undefined): Ban | undefined {
    if (value === undefined) return undefined;
    if (kind === "ip") return this.#addressBan(value);
    const ban = this.#bans.get(`${kind}:${value}`);
    if (ban === undefined) return undefined;
    if (ban.until !== null && ban.until <= new Date().toISOString()) {
      this.#delete(`${kind}:${value}`);
      return undefined;
    }
    return ban;
  }

  /** The `ip:` ban in force whose address or prefix holds an address, if any. */
  #addressBan(ip: string): Ban | undefined {
    const address = parseAddress(ip);
    if (address === undefined) return undefined;
    const now = new Date().toISOString();
    for (const [key, ban] of this.#bans) {
      if (ban.kind !== "ip") continue;
      if (ban.until !== null && ban.until <= now) {
        this.#delete(key);
        continue;
      }
      let range = this.#ranges.get(ban.value);
      if (range === undefined) {
        const parsed = parseAddressRange(ban.value);
        if (!parsed.ok) continue;
        this.#ranges.set(ban.value, range = parsed.range);
      }
      if (inRange(range, address)) return ban;
    }
    return undefined;
  }

  /**
   * Refuses a `hello` whose name, key or (without a key) address is banned,
   * and closes the connection.
   *
   * @param session Who says hello.
   * @param id The request's id.
   * @param name The name it asks for.
   * @returns Whether it was refused.
   */
  refuse(session: Session, id: RequestId, name: string): boolean {
    const ban = this.banned("name", nameKey(name)) ?? this.banned("key", session.fingerprint) ??
      (session.fingerprint === undefined ? this.#keylessBan(session.ip) : undefined);
    if (ban === undefined) return false;
    this.#shared.fail(session, id, "banned", `You are banned${banTerms(ban)}`);
    session.peer?.close();
    return true;
  }

  /** A ban of the address of someone banned by name or key: it holds for sessions without a key. */
  #keylessBan(ip: string): Ban | undefined {
    const address = parseAddress(ip);
    return address === undefined ? undefined : this.banned("addr", formatAddress(address));
  }

  /**
   * Refuses a message from a muted user.
   *
   * @param session Who speaks.
   * @param id The request's id.
   * @returns Whether it was refused.
   */
  muted(session: Registered, id: RequestId): boolean {
    const mute = this.#muteOf(session);
    if (mute === undefined) return false;
    this.#shared.fail(session, id, "muted", `You are muted${banTerms(mute)}`);
    return true;
  }

  /** The mute in force for a session's name or key, if any. */
  #muteOf(session: Registered): Ban | undefined {
    if (this.#mutes === 0) return undefined;
    return this.banned("mute", nameKey(session.name)) ??
      this.banned("mute", session.fingerprint && `key:${session.fingerprint}`);
  }

  /** Ends a session on an operator's order: it is told why, the others see it leave. */
  #eject(target: Session, reason: "kicked" | "banned", message: string): void {
    const peer = target.peer;
    this.#shared.leave(target, reason);
    peer?.deliver(new Outbound({ type: "bye", reason, message }));
    peer?.close();
  }

  /**
   * Stores a ban or mute, and those that go with it (all with the same end,
   * reason and origin), and keeps them in memory.
   */
  async #sanction(
    targets: [[BanKind, string], ...[BanKind, string][]],
    seconds: number | undefined,
    reason: string | undefined,
    by: string,
  ): Promise<Ban> {
    const now = Date.now();
    const [kind, value] = targets[0];
    const origin = `${kind}:${value}`;
    const bans = targets.map(([kind, value]): Ban => ({
      kind,
      value,
      until: seconds === undefined ? null : new Date(now + seconds * 1000).toISOString(),
      reason: reason ?? "",
      by,
      created: new Date(now).toISOString(),
      origin,
    }));
    for (const ban of bans) {
      await this.#shared.store.ban(ban);
      this.#set(ban);
    }
    this.#shared.cluster?.bansChanged();
    return bans[0] as Ban;
  }

  /**
   * What a ban of a name or key covers besides itself: the key bound to the
   * name, and the keys and addresses of the sessions that match it now.
   */
  async #related(
    kind: "name" | "key",
    value: string,
  ): Promise<[[BanKind, string], ...[BanKind, string][]]> {
    const related: [[BanKind, string], ...[BanKind, string][]] = [[kind, value]];
    const add = (kind: BanKind, value: string | undefined) => {
      if (value !== undefined && !related.some(([k, v]) => k === kind && v === value)) {
        related.push([kind, value]);
      }
    };
    if (kind === "name") add("key", await this.#shared.store.nameOwner(value));
    for (const other of this.#shared.sessions) {
      const matches = kind === "name"
        ? other.name !== undefined && nameKey(other.name) === value
        : other.fingerprint === value;
      if (!matches) continue;
      add("key", other.fingerprint);
      const address = parseAddress(other.ip);
      if (address !== undefined) add("addr", formatAddress(address));
    }
    return related;
  }

  /** Whether a session matches a stored ban (an `addr` ban only without a key). */
  #matches(session: Session, ban: Ban): boolean {
    switch (ban.kind) {
      case "name":
        return session.name !== undefined && nameKey(session.name) === ban.value;
      case "key":
        return session.fingerprint === ban.value;
      case "addr": {
        const address = parseAddress(session.ip);
        return session.fingerprint === undefined && address !== undefined &&
          formatAddress(address) === ban.value;
      }
      case "ip": {
        const range = parseAddressRange(ban.value);
        const address = parseAddress(session.ip);
        return range.ok && address !== undefined && inRange(range.range, address);
      }
      case "mute":
        return false;
    }
  }

  /**
   * Handles `kick`.
   *
   * @param session The operator.
   * @param frame The order.
   */
  kick(session: Registered, frame: KickFrame): void {
    const by = session.name;
    const target = this.#names.find(frame.name);
    const elsewhere = target === undefined ? this.#shared.cluster?.find(frame.name) : undefined;
    if (elsewhere !== undefined) {
      // On another node: that node ends the session.
      const message = `Kicked by ${by}${frame.reason ? `: ${frame.reason}` : ""}`;
      this.#shared.cluster!.eject(elsewhere.name, "kicked", message);
      this.#shared.log(`${by} kicked ${elsewhere.name}`);
      return this.#shared.ack(session, { type: "ack", id: frame.id });
    }
    if (target === undefined) {
      return this.#shared.fail(
        session,
        frame.id,
        "no_such_user",
        `Nobody here is called "${frame.name}"`,
      );
    }
    this.#eject(target, "kicked", `Kicked by ${by}${frame.reason ? `: ${frame.reason}` : ""}`);
    this.#shared.log(`${by} kicked ${target.name}`);
    this.#shared.ack(session, { type: "ack", id: frame.id });
  }

  /**
   * Handles `mute` (a duration of 0 lifts it).
   *
   * @param session The operator.
   * @param frame The order.
   */
  async mute(session: Registered, frame: MuteFrame): Promise<void> {
    const by = session.name;
    const store = this.#shared.store;
    const key = nameKey(frame.name.normalize("NFC"));
    const fingerprint = this.#names.byKey(key)?.fingerprint;
    if (frame.duration === 0) {
      // Lifts the mute of the name and of its key, with those made with them.
      for (const value of fingerprint === undefined ? [key] : [key, `key:${fingerprint}`]) {
        await store.unban("mute", value);
      }
      await this.#load();
    } else {
      // The mute follows the key too, under any name that key takes.
      const targets: [[BanKind, string], ...[BanKind, string][]] = [["mute", key]];
      if (fingerprint !== undefined) targets.push(["mute", `key:${fingerprint}`]);
      await this.#sanction(targets, capped(frame.duration), frame.reason, by);
    }
    this.#shared.log(`${by} ${frame.duration === 0 ? "unmuted" : "muted"} ${frame.name}`);
    this.#shared.ack(session, { type: "ack", id: frame.id });
  }

  /**
   * Handles `ban` and `unban`.
   *
   * @param session The operator.
   * @param frame The order.
   */
  async ban(session: Registered, frame: BanFrame | UnbanFrame): Promise<void> {
    const shared = this.#shared;
    const by = session.name;
    const target = frame.target.trim();
    let [kind, value]: [BanKind, string] = target.startsWith("key:")
      ? ["key", target.slice(4)]
      : target.startsWith("ip:")
      ? ["ip", target.slice(3)]
      : ["name", nameKey(target.normalize("NFC"))];
    if (frame.type === "ban" && frame.duration === 0) {
      return shared.fail(
        session,
        frame.id,
        "bad_request",
        "A ban needs a duration above 0, or none (for ever)",
      );
    }
    if (value === "") {
      return shared.fail(
        session,
        frame.id,
        "bad_request",
        "Say whom: NAME, key:FINGERPRINT or ip:ADDRESS",
      );
    }
    const written = value;
    if (kind === "ip") {
      const range = parseAddressRange(value);
      if (!range.ok) return shared.fail(session, frame.id, "bad_request", range.message);
      value = range.value;
    }
    if (frame.type === "unban") {
      // An address ban stored in another spelling is lifted as it was written.
      const store = shared.store;
      if (
        !await store.unban(kind, value) &&
        !(written !== value && await store.unban(kind, written))
      ) {
        return shared.fail(session, frame.id, "no_such_user", `"${target}" is not banned`);
      }
      await this.#load();
      shared.log(`${by} unbanned ${target}`);
      return shared.ack(session, { type: "ack", id: frame.id });
    }
    const targets: [[BanKind, string], ...[BanKind, string][]] = kind === "name" || kind === "key"
      ? await this.#related(kind, value)
      : [[kind, value]];
    const ban = await this.#sanction(targets, capped(frame.duration), frame.reason, by);
    const message = `Banned by ${by}${banTerms(ban)}`;
    const stored = targets.flatMap(([kind, value]) => this.#bans.get(`${kind}:${value}`) ?? []);
    for (const other of [...shared.sessions]) {
      if (other === session || other.gone) continue;
      if (stored.some((ban) => this.#matches(other, ban))) this.#eject(other, "banned", message);
    }
    shared.log(`${by} banned ${target}${banTerms({ ...ban, reason: "" })}`);
    shared.ack(session, { type: "ack", id: frame.id });
  }
}

/** At most a century: later dates do not fit the stored form. */
function capped(duration: number | undefined): number | undefined {
  return duration === undefined ? undefined : Math.min(duration, MAX_SANCTION_SECONDS);
}
