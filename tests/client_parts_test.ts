/**
 * The client's parts without sockets: the event queue and the request
 * matching, driven through fake links.
 */

import { deepEqual, equal, rejects } from "node:assert/strict";
import { ConnectionError, ProtocolError } from "../protocol/errors.ts";
import type { ClientFrame } from "../protocol/frames.ts";
import { EventQueue } from "../_client/events.ts";
import { type FrameSink, Requests } from "../_client/requests.ts";
import { kickRequest, muteRequest } from "../_client/moderation.ts";

/** A link that records what is written and ends when told. */
class FakeSink implements FrameSink {
  readonly written: ClientFrame[] = [];
  readonly #ended = Promise.withResolvers<void>();
  readonly reading: Promise<void> = this.#ended.promise;

  write(frame: ClientFrame): void {
    this.written.push(frame);
  }

  end(): void {
    this.#ended.resolve();
  }
}

const ts = "2026-01-01T00:00:00.000Z";

Deno.test("the event queue hands events out in order, to the type asked for", async () => {
  const events = new EventQueue();
  events.push({ type: "join", room: "#lobby", name: "bob", ts });
  events.push({ type: "dm", from: "bob", to: "alice", text: "hi", ts });
  const first = events.next(undefined, {});
  const dm = events.next("dm", {});
  equal((await first).type, "join");
  equal((await dm).text, "hi");
  const later = events.next("topic", {});
  events.push({ type: "join", room: "#lobby", name: "carol", ts });
  events.push({ type: "topic", room: "#lobby", topic: "t", from: "bob", ts });
  equal((await later).topic, "t");
});

Deno.test("the event queue times out, and fails waiters with closed once it ends", async () => {
  const events = new EventQueue();
  await rejects(
    events.next("dm", { timeout: 1 }),
    (error: unknown) => error instanceof ConnectionError && error.code === "timeout",
  );
  const waiting = events.next("dm", {});
  events.push({ type: "join", room: "#lobby", name: "bob", ts });
  events.end();
  await rejects(
    waiting,
    (error: unknown) => error instanceof ConnectionError && error.code === "closed",
  );
  // Events queued before the end are still handed out.
  events.push({ type: "join", room: "#lobby", name: "carol", ts });
  equal((await events.next("join", {})).name, "carol");
  await rejects(events.next(undefined, {}), ConnectionError);
});

Deno.test("requests get their own answers, and unanswered ones are re-sent in order", async () => {
  const requests = new Requests();
  const link = new FakeSink();
  const ping = requests.send({ type: "ping" }, link, undefined);
  const who = requests.send({ type: "who", room: "#lobby" }, link, undefined);
  const kick = requests.send(kickRequest("eve", undefined), link, undefined);
  deepEqual(link.written, [
    { type: "ping", id: 1 },
    { type: "who", room: "#lobby", id: 2 },
    { type: "kick", name: "eve", id: 3 },
  ]);
  equal(requests.settle(2, { type: "ack", id: 2, names: ["alice"] }), true);
  equal(requests.settle(2, { type: "ack", id: 2 }), false);
  equal(requests.settle("2", { type: "ack", id: "2" }), false);
  deepEqual((await who).names, ["alice"]);
  requests.settle(3, new ProtocolError("not_operator", "Only operators may kick"));
  await rejects(
    kick,
    (error: unknown) => error instanceof ProtocolError && !(error instanceof ConnectionError),
  );
  // Held while disconnected, then everything unanswered goes out again in id order.
  const mute = requests.send(muteRequest("eve", { duration: 60 }), undefined, undefined);
  const next = new FakeSink();
  requests.resend(next);
  deepEqual(next.written, [
    { type: "ping", id: 1 },
    { type: "mute", name: "eve", duration: 60, id: 4 },
  ]);
  requests.rejectAll(new ConnectionError("closed", "Closed"));
  await rejects(ping, ConnectionError);
  await rejects(mute, ConnectionError);
});

Deno.test("an aborted request stops waiting and is not re-sent; a direct one ends with its link", async () => {
  const requests = new Requests();
  const link = new FakeSink();
  const controller = new AbortController();
  const ping = requests.send({ type: "ping" }, link, controller.signal);
  controller.abort(new Error("stop"));
  await rejects(ping, /stop/);
  const next = new FakeSink();
  requests.resend(next);
  deepEqual(next.written, []);
  const history = requests.direct(
    link,
    { type: "history", room: "#dev", after: 3 },
    new AbortController().signal,
  );
  link.end();
  await rejects(
    history,
    (error: unknown) => error instanceof ConnectionError && error.code === "closed",
  );
});
