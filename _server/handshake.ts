/**
 * Who may come in, and as whom: the password, the proof of a key, the claim
 * of a name, the resume of a held session, and renames. Failed passwords and
 * key proofs make an address wait.
 *
 * @module
 */

import { createHash, timingSafeEqual } from "node:crypto";
import { fingerprintOf, proofBytes, verifySignature } from "../_common/identity.ts";
import type { ClientFrame, HelloFrame, NickFrame } from "../protocol/frames.ts";
import { LOBBY, PROTOCOL_VERSION } from "../protocol/limits.ts";
import { checkName, nameKey } from "../protocol/names.ts";
import { sanitize } from "../protocol/sanitize.ts";
import type { History } from "./history.ts";
import { LoginGuard } from "./login_guard.ts";
import { namesCover } from "./address.ts";
import { banTerms, type Moderation } from "./moderation.ts";
import type { Names } from "./names.ts";
import { Outbound } from "./outbound.ts";
import { randomToken } from "./random.ts";
import type { Rooms } from "./rooms.ts";
import type { Origin, Registered, Session } from "./session.ts";
import type { Shared } from "./shared.ts";
import type { PresenceRow } from "./storage.ts";

/** A raw 32-byte key and a 64-byte signature in padded base64. */
const WELL_FORMED_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
const WELL_FORMED_SIGNATURE = /^[A-Za-z0-9+/]{85}[AQgw]==$/;

function digest(text: string): Uint8Array {
  return createHash("sha256").update(text).digest();
}

/** Why a `hello` with a key names another server than the one it reached, or `undefined`. */
async function notForUs(origin: Origin, hello: HelloFrame): Promise<string | undefined> {
  if (hello.server === undefined) {
    return 'A key proof must name the server ("server" in "hello", chat-auth-v2): ' +
      "update the client";
  }
  const port = /^(?:\[[^\]]*\]|[^:\[\]]*):(\d{1,5})$/.exec(hello.server)?.[1];
  if (port === undefined || !origin.ports.includes(Number(port))) {
    return `The key proof is for "${hello.server.slice(0, 100)}", not for this server (port ${
      origin.ports.join(" or ")
    })`;
  }
  const ours = await origin.fingerprint;
  const theirs = hello.tls ?? "";
  if (ours !== undefined && theirs === "") {
    // Verified by an authority: the client checked that the certificate it was shown is valid
    // for the host it dialed, so a proof naming a host our certificate is not valid for was
    // made for another server (which may be passing our challenge on).
    const host = /^(\[[^\]]*\]|[^:\[\]]*):\d{1,5}$/.exec(hello.server)?.[1] ?? "";
    if (!namesCover(await origin.names ?? [], host)) {
      return `The key proof is for "${
        hello.server.slice(0, 100)
      }", which this server's certificate is not valid for`;
    }
    return undefined;
  }
  if ((ours ?? "") !== theirs) {
    return ours === undefined
      ? `The key proof is for a TLS server with the certificate "${
        theirs.slice(0, 100)
      }", but this connection is not TLS`
      : `The key proof is for the TLS certificate "${
        theirs.slice(0, 100)
      }", not this server's ${ours}`;
  }
  return undefined;
}

/** What comes after an answer to a challenge. */
export type ProofOutcome =
  /** The key is proven: the `hello` goes on. */
  | { proved: HelloFrame }
  /** Not an answer: the challenge failed, and this frame gets its own answer. */
  | { other: ClientFrame }
  /** Refused. */
  | undefined;

/** The handshake and renames. */
export class Handshake {
  #shared: Shared;
  #names: Names;
  #rooms: Rooms;
  #history: History;
  #moderation: Moderation;
  #guard: LoginGuard;
  #password: Uint8Array | undefined;

  /**
   * Creates the handshake.
   *
   * @param shared The core's shared state.
   * @param names Who is called what.
   * @param rooms The rooms (a new session enters `#lobby`).
   * @param history Its replay.
   * @param moderation Bans.
   */
  constructor(
    shared: Shared,
    names: Names,
    rooms: Rooms,
    history: History,
    moderation: Moderation,
  ) {
    this.#shared = shared;
    this.#names = names;
    this.#rooms = rooms;
    this.#history = history;
    this.#moderation = moderation;
    const { password, limits } = shared.options;
    if (password !== undefined) this.#password = digest(password);
    this.#guard = new LoginGuard(limits.loginFailureRate, limits.loginBackoffMax);
  }

  /** Forgets addresses whose failed logins are old. */
  sweep(): void {
    this.#guard.sweep();
  }

  /**
   * Whether a frame is a `hello` whose key must be proven before it goes on
   * (a valid resume token is proof enough).
   *
   * @param session Who sent it.
   * @param frame The frame.
   * @returns Whether to challenge.
   */
  needsProof(session: Session, frame: ClientFrame): frame is HelloFrame {
    return frame.type === "hello" && frame.key !== undefined && !session.registered() &&
      this.#names.resumable(frame.resume) === undefined;
  }

  /**
   * Sends a challenge for a `hello` with a key, once the name is valid and
   * the server it names is this one.
   *
   * @param session Who said hello.
   * @param frame The `hello`.
   * @returns A promise that resolves once the challenge is out or refused.
   */
  async challenge(session: Session, frame: HelloFrame): Promise<void> {
    // The name goes into the signed bytes: check it first.
    const name = checkName(frame.name);
    if (!name.ok) return this.#shared.fail(session, frame.id, "invalid_name", name.message);
    // The proof must be for this server, as the client dialed it: else a server the
    // user joined could pass our challenge on and log in here as them.
    const refusal = await notForUs(session.origin, frame);
    if (refusal !== undefined) {
      return this.#shared.fail(session, frame.id, "auth_failed", refusal);
    }
    const nonce = randomToken(24, "base64");
    session.challenge({ hello: frame, nonce });
    session.peer?.deliver(new Outbound({ type: "challenge", id: frame.id, nonce }));
  }

  /**
   * Checks the answer to a challenge (the frame after it, whatever it is).
   *
   * @param session Who was challenged.
   * @param frame The frame.
   * @returns What comes next.
   */
  async authenticate(session: Session, frame: ClientFrame): Promise<ProofOutcome> {
    const pending = session.takeChallenge();
    if (pending === undefined) return { other: frame };
    const { hello, nonce } = pending;
    const fail = (message: string) => this.#shared.fail(session, hello.id, "auth_failed", message);
    if (frame.type !== "auth" || frame.id !== hello.id) {
      fail('Expected "auth" with the signed challenge after a "hello" with a key');
      // The frame itself still gets its own answer.
      return frame.type === "auth" ? undefined : { other: frame };
    }
    const wait = this.#guard.wait(session.ip);
    if (wait > 0) {
      this.#shared.fail(
        session,
        hello.id,
        "rate_limited",
        `Too many failed logins from your address; try again in ${Math.ceil(wait / 1000)} s`,
      );
      return undefined;
    }
    const key = hello.key ?? "";
    if (frame.nonce === undefined || frame.nonce === "" || frame.nonce.includes("\n")) {
      fail('Expected the client\'s "nonce" in "auth" (chat-auth-v2): update the client');
      return undefined;
    }
    const valid = await verifySignature(
      key,
      frame.signature,
      proofBytes({
        server: hello.server ?? "",
        tls: hello.tls ?? "",
        name: hello.name,
        serverNonce: nonce,
        clientNonce: frame.nonce,
      }),
    );
    if (!valid) {
      // Only a proof that could have been right counts as a failed login.
      if (WELL_FORMED_KEY.test(key) && WELL_FORMED_SIGNATURE.test(frame.signature)) {
        this.#failed(session.ip);
      }
      fail("The signature does not match the key");
      return undefined;
    }
    session.proved(await fingerprintOf(key));
    return { proved: hello };
  }

  /** Counts a failed password or key proof against an address. */
  #failed(ip: string): void {
    this.#guard.failed(ip);
    this.#shared.log(`Failed login from ${ip}`);
  }

  /**
   * Handles `hello`: a resume, or a password check and a name claim.
   *
   * @param session Who says hello.
   * @param frame The request.
   */
  async hello(session: Session, frame: HelloFrame): Promise<void> {
    const shared = this.#shared;
    if (session.registered()) {
      return shared.fail(session, frame.id, "already_registered", "Already joined");
    }
    if (frame.v !== PROTOCOL_VERSION) {
      return shared.fail(
        session,
        frame.id,
        "unsupported_version",
        `Protocol version ${frame.v} is not supported; this server speaks version ${PROTOCOL_VERSION}`,
      );
    }
    const software = frame.client === undefined ? "" : ` (${sanitize(frame.client.slice(0, 100))})`;
    session.understand(frame.caps);
    const held = this.#names.resumable(frame.resume);
    if (held !== undefined) return this.#resume(session, held, frame, software);
    // Held on another node (or left there, the node dead): it goes on here.
    const elsewhere = await shared.cluster?.resumable(frame.resume);
    if (elsewhere !== undefined) return this.#takeOver(session, elsewhere, frame, software);

    if (this.#password !== undefined) {
      const wait = this.#guard.wait(session.ip);
      if (wait > 0) {
        shared.fail(
          session,
          frame.id,
          "rate_limited",
          `Too many failed logins from your address; try again in ${Math.ceil(wait / 1000)} s`,
        );
        session.peer?.close();
        return;
      }
      const given = digest(frame.password ?? "");
      if (!timingSafeEqual(given, this.#password)) {
        if (frame.password !== undefined) this.#failed(session.ip);
        shared.fail(
          session,
          frame.id,
          "unauthorized",
          frame.password === undefined ? "This server needs a password" : "Wrong password",
        );
        session.peer?.close();
        return;
      }
      this.#guard.succeeded(session.ip);
    }
    // The owner of the key of a session held for a reconnect takes it over at once.
    const asked = checkName(frame.name);
    const owned = asked.ok ? this.#names.byKey(nameKey(asked.name)) : undefined;
    if (
      owned !== undefined && owned.peer === undefined && !owned.gone &&
      session.fingerprint !== undefined && owned.fingerprint === session.fingerprint
    ) {
      if (this.#moderation.refuse(session, frame.id, owned.name)) return;
      shared.log(`${owned.name} proved its key and took over its held session`);
      return this.#resume(session, owned, frame, software);
    }
    const name = await this.#names.claim(session, frame.id, frame.name);
    if (name === undefined) return;
    if (this.#moderation.refuse(session, frame.id, name)) return;
    const token = randomToken(18);
    if (
      shared.cluster !== undefined && !await shared.cluster.claim(session, frame.id, name, token)
    ) {
      return;
    }
    try {
      await this.#names.bindTo(session, name);
    } catch (error) {
      // The name taken across the nodes goes back.
      shared.cluster?.release(name);
      throw error;
    }
    const registered = session.register(
      name,
      token,
      frame.reconnect === true,
      frame.transient === true,
    );
    this.#names.add(registered);
    const lobby = this.#rooms.enterLobby(registered);
    this.#welcome(registered, frame, false);
    await this.#history.replay(registered, lobby, frame.history ?? shared.options.historyOnJoin);
    shared.log(`${name} joined from ${session.remote}${software}`);
  }

  #welcome(session: Registered, frame: HelloFrame, resumed: boolean): void {
    const { options, limits } = this.#shared;
    const { maxFrameBytes, maxTextLength, idleTimeout } = limits;
    const rooms = this.#rooms;
    const count = rooms.countIn(rooms.lobby, session);
    session.peer?.deliver(
      new Outbound({
        type: "welcome",
        id: frame.id,
        v: PROTOCOL_VERSION,
        server: options.software,
        name: session.name,
        room: LOBBY,
        members: rooms.namesIn(rooms.lobby, session),
        ...(count === undefined ? {} : { count }),
        rooms: [...session.rooms].map((room) => rooms.state(room, session)),
        session: session.token,
        resumed,
        resumeGrace: options.resumeGrace,
        limits: { maxFrameBytes, maxTextLength, idleTimeout },
      }),
    );
  }

  /** A session of another node goes on here: same name, same rooms, a new token. */
  async #takeOver(
    session: Session,
    row: PresenceRow,
    frame: HelloFrame,
    software: string,
  ): Promise<void> {
    const shared = this.#shared;
    const cluster = shared.cluster!;
    if (this.#moderation.refuse(session, frame.id, row.name)) return;
    const token = randomToken(18);
    if (!await cluster.claim(session, frame.id, row.name, token, frame.resume)) return;
    if (row.fingerprint !== undefined) session.proved(row.fingerprint);
    const registered = session.register(row.name, token, frame.reconnect === true);
    this.#names.add(registered);
    cluster.tookOver(row.name);
    // It stays away, and an operator of the rooms it was one of.
    if (row.away !== undefined && row.away !== "") registered.setAway(row.away);
    await this.#rooms.reenter(registered, row.rooms, row.ops);
    cluster.changed(registered);
    this.#welcome(registered, frame, true);
    // The private messages its old node kept for it, alive or not.
    for (const dm of await cluster.takeKept(row.name)) {
      registered.peer?.deliver(new Outbound(dm));
    }
    shared.log(`${row.name} reconnected from ${session.remote}${software}, from node ${row.node}`);
  }

  #resume(fresh: Session, held: Registered, frame: HelloFrame, software: string): void {
    const peer = fresh.peer;
    if (peer === undefined) return;
    this.#shared.sessions.delete(fresh);
    fresh.end();
    const old = held.resume(peer, fresh.origin);
    // A token works once: the resumed session gets a new one.
    this.#names.dropToken(held.token);
    held.renew(randomToken(18), frame.reconnect === true);
    held.understand(frame.caps);
    this.#names.addToken(held);
    this.#shared.cluster?.changed(held);
    this.#shared.cluster?.held(held, null);
    peer.adopt(held);
    if (old !== undefined) {
      // The old connection is still open (its end has not been noticed yet): retire it.
      old.deliver(
        new Outbound({
          type: "bye",
          reason: "replaced",
          message: "This session was resumed elsewhere",
        }),
      );
      old.close();
    }
    this.#welcome(held, frame, true);
    for (const dm of held.takeKept()) peer.deliver(new Outbound(dm));
    this.#shared.cluster?.takeKept(held.name).then((kept) => {
      for (const dm of kept) held.peer?.deliver(new Outbound(dm));
    });
    this.#shared.log(`${held.name} reconnected from ${held.remote}${software}`);
  }

  /**
   * Handles `nick`.
   *
   * @param session Who renames.
   * @param frame The request.
   */
  async nick(session: Registered, frame: NickFrame): Promise<void> {
    const shared = this.#shared;
    const name = await this.#names.claim(session, frame.id, frame.name);
    if (name === undefined) return;
    const old = session.name;
    const cluster = shared.cluster;
    const ban = this.#moderation.banned("name", nameKey(name));
    if (ban !== undefined) {
      return shared.fail(
        session,
        frame.id,
        "banned",
        `The name "${name}" is banned${banTerms({ ...ban, reason: "" })}`,
      );
    }
    if (name !== old && cluster !== undefined && !await cluster.rename(session, frame.id, name)) {
      return;
    }
    await this.#names.bindTo(session, name);
    if (name !== old) {
      session.rename(name);
      cluster?.renamed(old, name, [...session.rooms].map((room) => room.name));
      this.#names.renamed(session, old);
      const out = new Outbound({ type: "nick", from: old, to: name, ts: new Date().toISOString() });
      const seen = new Set<Session>();
      for (const room of session.rooms) {
        for (const member of room.members) seen.add(member);
      }
      shared.broadcast(seen, out, session);
      shared.log(`${old} is now ${name}`);
    }
    shared.ack(session, { type: "ack", id: frame.id, name });
  }
}
