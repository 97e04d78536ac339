/**
 * Who is called what: the sessions by name, by the look of their name and by
 * resume token, the names bound to keys, and the rules for claiming a name.
 *
 * @module
 */

import type { AckFrame, RequestId, WhoisFrame } from "../protocol/frames.ts";
import { checkName, nameKey } from "../protocol/names.ts";
import type { Registered, Session } from "./session.ts";
import type { Shared } from "./shared.ts";
import { confusableKey } from "./skeleton.ts";

/** Names one key binds at most; names it takes beyond them are not bound to it. */
export const MAX_NAMES_PER_KEY = 10;

/** The names in use and bound to keys. */
export class Names {
  #shared: Shared;
  #names = new Map<string, Registered>();
  /** Sessions (connected or held) by the look of their name. */
  #looks = new Map<string, Registered>();
  #tokens = new Map<string, Registered>();
  /** Names bound to keys, by their look: fingerprint → the name as written. */
  #bound = new Map<string, Map<string, string>>();
  /** The name keys bound to each key. */
  #perKey = new Map<string, Set<string>>();

  /**
   * Loads the names bound to keys.
   *
   * @param shared The core's shared state.
   * @param bound The names bound to keys, as stored.
   */
  constructor(shared: Shared, bound: readonly { name: string; fingerprint: string }[]) {
    this.#shared = shared;
    for (const { name, fingerprint } of bound) this.#bind(name, fingerprint);
  }

  /** How many sessions have a name (held ones included). */
  get size(): number {
    return this.#names.size;
  }

  /**
   * The session with a name, as someone typed it.
   *
   * @param name The name.
   * @returns The session, if anyone has it.
   */
  find(name: string): Registered | undefined {
    return this.#names.get(nameKey(name.normalize("NFC")));
  }

  /**
   * The session with a name key.
   *
   * @param key The name key.
   * @returns The session, if anyone has it.
   */
  byKey(key: string): Registered | undefined {
    return this.#names.get(key);
  }

  /**
   * The session a resume token takes over, if it may.
   *
   * @param token The token from `hello.resume`.
   * @returns The held session.
   */
  resumable(token: string | undefined): Registered | undefined {
    const held = token === undefined ? undefined : this.#tokens.get(token);
    return held !== undefined && !held.gone && held.reconnect ? held : undefined;
  }

  /**
   * Records a session that just got its name, or a new token.
   *
   * @param session The session.
   */
  add(session: Registered): void {
    this.#names.set(nameKey(session.name), session);
    this.#looks.set(confusableKey(session.name), session);
    this.#tokens.set(session.token, session);
  }

  /**
   * Forgets a resume token (a token works once).
   *
   * @param token The token.
   */
  dropToken(token: string): void {
    this.#tokens.delete(token);
  }

  /**
   * Records a new resume token.
   *
   * @param session The session that has it.
   */
  addToken(session: Registered): void {
    this.#tokens.set(session.token, session);
  }

  /**
   * Forgets a session that left.
   *
   * @param session The session.
   */
  remove(session: Session): void {
    this.#tokens.delete(session.token);
    const name = session.name;
    if (name === undefined) return;
    this.#names.delete(nameKey(name));
    this.#looks.delete(confusableKey(name));
  }

  /**
   * Moves a session to its new name.
   *
   * @param session The session, already renamed.
   * @param old Its old name.
   */
  renamed(session: Registered, old: string): void {
    this.#names.delete(nameKey(old));
    this.#looks.delete(confusableKey(old));
    this.#names.set(nameKey(session.name), session);
    this.#looks.set(confusableKey(session.name), session);
  }

  /** Forgets everyone (at shutdown). */
  clear(): void {
    this.#names.clear();
    this.#looks.clear();
    this.#tokens.clear();
  }

  /**
   * Binds a name to the key of the session that takes it, if it proved one.
   *
   * @param session The session.
   * @param name The name.
   */
  async bindTo(session: Session, name: string): Promise<void> {
    const fingerprint = session.fingerprint;
    if (fingerprint === undefined) return;
    const held = this.#perKey.get(fingerprint);
    // A key binds a few names, not every name it passes through: past that, new ones stay free.
    if (held !== undefined && !held.has(nameKey(name)) && held.size >= MAX_NAMES_PER_KEY) return;
    await this.#shared.store.claimName(nameKey(name), name, fingerprint);
    this.#bind(name, fingerprint);
  }

  /** Remembers that a name is bound to a key, for the look-alike check. */
  #bind(name: string, fingerprint: string): void {
    let held = this.#perKey.get(fingerprint);
    if (held === undefined) this.#perKey.set(fingerprint, held = new Set());
    held.add(nameKey(name));
    const look = confusableKey(name);
    let owners = this.#bound.get(look);
    if (owners === undefined) this.#bound.set(look, owners = new Map());
    if (!owners.has(fingerprint)) owners.set(fingerprint, name);
  }

  /**
   * Checks that a session may take a name, or refuses the request.
   *
   * @param session Who wants it.
   * @param id The request's id.
   * @param wanted The name as asked.
   * @returns The name in its checked form, or `undefined` when refused.
   */
  async claim(session: Session, id: RequestId, wanted: string): Promise<string | undefined> {
    const shared = this.#shared;
    const checked = checkName(wanted);
    if (!checked.ok) {
      shared.fail(session, id, "invalid_name", checked.message);
      return undefined;
    }
    const owner = await shared.store.nameOwner(nameKey(checked.name));
    if (owner !== undefined && owner !== session.fingerprint) {
      shared.fail(
        session,
        id,
        "name_claimed",
        `The name "${checked.name}" belongs to another key (${owner}); choose another name`,
      );
      return undefined;
    }
    const look = confusableKey(checked.name);
    if (owner === undefined) {
      // A name that looks like one bound to another key is that key's too.
      for (const [fingerprint, name] of this.#bound.get(look) ?? []) {
        if (fingerprint === session.fingerprint) continue;
        shared.fail(
          session,
          id,
          "name_claimed",
          `The name "${checked.name}" looks like "${name}", which belongs to another key (${fingerprint}); choose another name`,
        );
        return undefined;
      }
    }
    const holder = this.#names.get(nameKey(checked.name));
    if (holder !== undefined && holder !== session) {
      shared.fail(
        session,
        id,
        "name_taken",
        holder.peer === undefined
          ? `The name "${checked.name}" is held for someone who is reconnecting`
          : `The name "${checked.name}" is taken`,
      );
      return undefined;
    }
    const alike = this.#looks.get(look);
    if (alike !== undefined && alike !== session && !alike.gone) {
      shared.fail(
        session,
        id,
        "name_taken",
        `The name "${checked.name}" looks like "${alike.name}", which is taken; choose another name`,
      );
      return undefined;
    }
    return checked.name;
  }

  /**
   * Handles `whois`: whether someone is online, and the key their name is
   * bound to.
   *
   * @param session Who asks.
   * @param frame The request.
   */
  async whois(session: Session, frame: WhoisFrame): Promise<void> {
    const shared = this.#shared;
    const key = nameKey(frame.name.normalize("NFC"));
    const online = this.#names.get(key) ?? shared.cluster?.find(frame.name);
    const fingerprint = online?.fingerprint ?? await shared.store.nameOwner(key);
    if (online === undefined && fingerprint === undefined) {
      return shared.fail(
        session,
        frame.id,
        "no_such_user",
        `Nobody is called "${frame.name}" or has claimed that name`,
      );
    }
    const ack: AckFrame = {
      type: "ack",
      id: frame.id,
      name: online?.name ?? frame.name,
      online: online !== undefined,
    };
    if (fingerprint !== undefined) ack.fingerprint = fingerprint;
    if (online !== undefined) {
      ack.op = online.fingerprint !== undefined &&
        (shared.options.operators?.has(online.fingerprint) ?? false);
      if (online.away !== "") ack.away = online.away;
    }
    shared.ack(session, ack);
  }
}
