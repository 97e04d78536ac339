// The chat page: one WebSocket carrying protocol v1 frames (protocol/PROTOCOL.md),
// files over their own WebSockets. Remote text only ever becomes text nodes.

import { Sha256 } from "/sha256.js";
import { loadIdentity, serverAddress } from "/identity.js";

const CLIENT = "chat-web/0.1.0";
const LOBBY = "#lobby";
const PAGE = 200;
const CHUNK = 64 * 1024;
/** Bytes of a file the server may not have passed on yet (it says how far it got). */
const WINDOW = 1024 * 1024;
/** Received images shown inline; never SVG or HTML, which could run script. */
const PREVIEW_TYPES = new Set([
  "image/png",
  "image/jpeg",
  "image/gif",
  "image/webp",
  "image/avif",
  "image/bmp",
]);
/** Errors after which reconnecting cannot help. */
const FINAL = new Set([
  "name_taken",
  "invalid_name",
  "name_claimed",
  "banned",
  "unauthorized",
  "auth_failed",
]);
/** Controls, bidirectional overrides and isolates, invisible formatting. */
const UNSAFE =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\ufff9-\ufffb]/g;

const $ = (id) => document.getElementById(id);

/** Remote text made safe to show: controls and direction overrides become visible marks. */
function clean(text) {
  return String(text).replace(UNSAFE, "\ufffd");
}

/** An element with text children only (strings become text nodes). */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(typeof child === "string" ? document.createTextNode(clean(child)) : child);
  }
  return node;
}

function formatTime(ts) {
  const date = new Date(ts);
  return Number.isNaN(date.getTime())
    ? ""
    : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function randomKey() {
  return crypto.randomUUID?.() ??
    [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16)).join("");
}

function socketUrl() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
}

/** One conversation: a room, or private messages with one person. */
class View {
  constructor(id) {
    this.id = id;
    this.room = id.startsWith("#");
    this.log = el("div", { class: "entries" });
    this.unread = 0;
    /** Room: the members, the topic, the highest seq seen, the seqs shown. */
    this.members = new Set();
    this.topic = "";
    this.seen = 0;
    this.shown = new Set();
    this.oldest = Infinity;
    this.atStart = false;
    this.loading = false;
    this.joined = this.room;
  }
}

class Chat {
  constructor() {
    this.name = "";
    this.token = undefined;
    this.nextId = 1;
    /** Requests without an answer, in order: re-sent after a reconnect. */
    this.pending = new Map();
    this.views = new Map();
    this.current = LOBBY;
    this.socket = undefined;
    this.online = false;
    this.stopped = false;
    this.attempt = 0;
    this.welcomed = false;
    this.offers = new Map();
    this.outgoing = new Map();
  }

  // The connection

  async start(name) {
    this.name = name;
    this.identity ??= await loadIdentity();
    this.connect();
  }

  /** A hello: resuming, or proving the key when there is one (and it was not refused). */
  hello(socket) {
    const hello = {
      type: "hello",
      id: this.nextId++,
      v: 1,
      name: this.name,
      client: CLIENT,
      reconnect: true,
    };
    if (this.welcomed) hello.history = 0;
    if (this.token !== undefined) hello.resume = this.token;
    // The key goes with a resume too: if the server forgot the session, it challenges the key,
    // which gets the name bound to it back.
    if (this.identity !== undefined && !this.keyless) {
      hello.key = this.identity.key;
      hello.server = serverAddress();
      this.proving = hello;
    }
    this.helloId = hello.id;
    socket.send(JSON.stringify(hello));
  }

  async challenge(frame) {
    const hello = this.proving;
    if (hello === undefined || frame.id !== hello.id || this.online) return;
    this.proving = undefined;
    const { nonce, signature } = await this.identity.prove({
      server: hello.server,
      name: hello.name,
      nonce: frame.nonce,
    });
    this.socket?.send(JSON.stringify({ type: "auth", id: hello.id, nonce, signature }));
  }

  connect() {
    const socket = new WebSocket(socketUrl());
    this.socket = socket;
    socket.onopen = () => this.hello(socket);
    socket.onmessage = (event) => {
      if (typeof event.data !== "string") return;
      // A message carries one frame or more, a line each.
      for (const line of event.data.split("\n")) {
        let frame;
        try {
          frame = JSON.parse(line);
        } catch {
          continue;
        }
        if (frame && typeof frame === "object") this.frame(frame);
      }
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.online = false;
      this.socket = undefined;
      if (event.code === 1008 && event.reason) this.notice(event.reason, "error");
      this.reconnect();
    };
  }

  reconnect() {
    if (this.stopped) return ui.status(false, "Disconnected");
    this.attempt++;
    const ceiling = Math.min(10_000, 250 * 2 ** (this.attempt - 1));
    const wait = ceiling / 2 + Math.random() * ceiling / 2;
    ui.status(false, `Offline, reconnecting in ${Math.ceil(wait / 1000)} s`);
    setTimeout(() => this.connect(), wait);
  }

  send(frame) {
    if (this.online) this.socket.send(JSON.stringify(frame));
  }

  /** Sends a request; resolves with its ack, rejects with its error. */
  request(frame) {
    const id = this.nextId++;
    const full = { ...frame, id };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { frame: full, resolve, reject });
      this.send(full);
    });
  }

  frame(frame) {
    switch (frame.type) {
      case "welcome":
        return this.welcome(frame);
      case "challenge":
        return this.challenge(frame);
      case "ack":
      case "error":
        return this.answer(frame);
      case "message":
        return this.message(frame, frame.history !== true);
      case "dm":
        return this.dm(frame);
      case "join":
        return this.joinEvent(frame);
      case "leave":
        return this.leaveEvent(frame);
      case "nick":
        return this.nickEvent(frame);
      case "topic":
        return this.topicEvent(frame);
      case "ping":
        return this.send({ type: "pong" });
      case "bye":
        return this.bye(frame);
      case "offer":
        return this.offer(frame);
      case "transfer":
        return this.transfer(frame);
    }
  }

  answer(frame) {
    if (frame.type === "error" && frame.id === this.helloId && !this.online) {
      return this.helloFailed(frame);
    }
    const ids = frame.id !== undefined ? [frame.id] : frame.ids ?? [];
    if (ids.length === 0 && frame.type === "error") return this.notice(frame.message, "error");
    for (const id of ids) {
      const request = this.pending.get(id);
      if (request === undefined) continue;
      this.pending.delete(id);
      if (frame.type === "ack") request.resolve(frame);
      else request.reject(frame);
    }
  }

  helloFailed(frame) {
    if (frame.code === "auth_failed" && !this.keyless && this.socket !== undefined) {
      // The proof cannot work here (a name the certificate does not know, say): join without it.
      this.keyless = true;
      return this.hello(this.socket);
    }
    if (!this.welcomed) {
      this.stopped = true;
      this.socket?.close();
      return ui.loginError(frame.message);
    }
    this.notice(frame.message, "error");
    if (FINAL.has(frame.code)) {
      this.stopped = true;
      this.socket?.close();
    }
  }

  async welcome(frame) {
    const first = !this.welcomed;
    this.welcomed = true;
    this.online = true;
    this.attempt = 0;
    this.name = frame.name;
    this.token = frame.session;
    ui.status(true);
    if (first) {
      history.replaceState(null, "", `?name=${encodeURIComponent(this.name)}`);
      ui.started();
    }
    // Rooms were kept (a resume) or must be joined again (a new session).
    const targets = new Map(frame.rooms.map((room) => [room.name, room]));
    for (const room of frame.rooms) {
      const view = this.view(room.name);
      view.joined = true;
      view.topic = room.topic;
      view.members = new Set(room.members);
    }
    const rejoin = [];
    for (const view of this.views.values()) {
      if (view.room && view.joined && !targets.has(view.id)) rejoin.push(view);
    }
    const unanswered = [...this.pending.values()];
    for (const view of rejoin) {
      try {
        const ack = await this.request({ type: "join", room: view.id, history: 0 });
        targets.set(view.id, { name: view.id, seq: ack.seq });
        view.topic = ack.topic;
        view.members = new Set(ack.names);
      } catch (error) {
        view.joined = false;
        this.notice(error.message, "error", view.id);
      }
    }
    // Unanswered requests go again, in order, with their keys, once the rooms are joined again.
    for (const request of unanswered) {
      if (this.pending.has(request.frame.id)) this.send(request.frame);
    }
    ui.render();
    // Catch up: every message between what was seen and the room's seq now.
    for (const [name, room] of targets) {
      const view = this.view(name);
      if (first || view.seen === 0) {
        view.seen = Math.max(view.seen, room.seq);
        continue;
      }
      if (room.seq < view.seen) {
        this.notice("The server forgot this room's history; numbering starts again", "event", name);
        view.seen = room.seq;
        continue;
      }
      await this.catchUp(view, room.seq);
    }
  }

  async catchUp(view, target) {
    let after = view.seen;
    while (after < target) {
      let ack;
      try {
        ack = await this.request({ type: "history", room: view.id, after, limit: PAGE });
      } catch {
        return;
      }
      const messages = ack.messages.filter((message) => message.seq <= target);
      if (messages.length === 0) break;
      for (const message of messages) this.message(message, false);
      after = messages[messages.length - 1].seq;
    }
  }

  bye(frame) {
    this.notice(frame.message, frame.reason === "shutdown" ? "event" : "error");
    if (frame.reason !== "shutdown" && frame.reason !== "timeout") this.stopped = true;
    if (frame.reason === "send_queue_exceeded" || frame.reason === "flood") {
      this.stopped = false;
    }
  }

  // Events

  view(id) {
    let view = this.views.get(id);
    if (view === undefined) {
      view = new View(id);
      this.views.set(id, view);
      ui.render();
    }
    return view;
  }

  message(frame, live) {
    const view = this.view(frame.room);
    if (typeof frame.seq !== "number" || view.shown.has(frame.seq)) return;
    view.shown.add(frame.seq);
    view.seen = Math.max(view.seen, frame.seq);
    view.oldest = Math.min(view.oldest, frame.seq);
    const mine = frame.from === this.name;
    const mention = !mine && this.mentions(frame.text);
    ui.insert(view, ui.messageLine(frame, { mine, mention }), frame.seq);
    if (live && !mine) {
      ui.arrived(view, mention, `${frame.from} in ${frame.room}`, frame.text);
    }
  }

  dm(frame) {
    const other = frame.from === this.name ? frame.to : frame.from;
    const view = this.view(`@${other}`);
    ui.insert(view, ui.messageLine(frame, { mine: frame.from === this.name, mention: false }));
    ui.arrived(view, true, `${frame.from} (private)`, frame.text);
  }

  mentions(text) {
    const name = this.name.toLowerCase();
    const lower = String(text).toLowerCase();
    let at = lower.indexOf(name);
    while (at !== -1) {
      const before = lower[at - 1];
      const after = lower[at + name.length];
      if (
        (!before || !/[\p{L}\p{N}_]/u.test(before)) && (!after || !/[\p{L}\p{N}_]/u.test(after))
      ) {
        return true;
      }
      at = lower.indexOf(name, at + 1);
    }
    return false;
  }

  joinEvent(frame) {
    const view = this.view(frame.room);
    view.members.add(frame.name);
    this.notice(`${frame.name} joined`, "event", frame.room);
    ui.render();
  }

  leaveEvent(frame) {
    const view = this.view(frame.room);
    view.members.delete(frame.name);
    // Removed from the room by one of its operators: no longer in it.
    if (frame.name === this.name) {
      view.joined = false;
      view.members.clear();
    }
    const why = frame.reason + (frame.by ? ` by ${frame.by}` : "") +
      (frame.message ? `: ${frame.message}` : "");
    this.notice(`${frame.name} left (${why})`, "event", frame.room);
    ui.render();
  }

  nickEvent(frame) {
    for (const view of this.views.values()) {
      if (!view.members.has(frame.from)) continue;
      view.members.delete(frame.from);
      view.members.add(frame.to);
      this.notice(`${frame.from} is now ${frame.to}`, "event", view.id);
    }
    ui.render();
  }

  topicEvent(frame) {
    const view = this.view(frame.room);
    view.topic = frame.topic;
    this.notice(
      frame.topic === ""
        ? `${frame.from} cleared the topic`
        : `${frame.from} set the topic: ${frame.topic}`,
      "event",
      frame.room,
    );
    ui.render();
  }

  notice(text, kind = "event", where = this.current) {
    ui.insert(this.view(where), ui.noticeLine(text, kind));
  }

  // What the user does

  async say(text, action = false) {
    const target = this.current;
    const view = this.view(target);
    const key = randomKey();
    if (view.room) {
      const line = ui.messageLine(
        { from: this.name, text, action, ts: new Date().toISOString() },
        { mine: true, pending: true },
      );
      ui.insert(view, line);
      try {
        const ack = await this.request({ type: "send", room: target, text, action, key });
        line.remove();
        this.message(
          { room: target, from: this.name, text, action, ts: ack.ts, seq: ack.seq },
          false,
        );
      } catch (error) {
        line.remove();
        this.notice(error.message, "error", target);
      }
    } else {
      await this.privately(target.slice(1), text, action, key);
    }
  }

  async privately(to, text, action = false, key = randomKey()) {
    try {
      const ack = await this.request({ type: "dm", to, text, action, key });
      const view = this.view(`@${ack.to}`);
      ui.insert(
        view,
        ui.messageLine({ from: this.name, text, action, ts: ack.ts }, { mine: true }),
      );
    } catch (error) {
      this.notice(error.message, "error");
    }
  }

  async join(room) {
    if (!room.startsWith("#")) room = `#${room}`;
    try {
      const ack = await this.request({ type: "join", room, history: 50 });
      const view = this.view(ack.room);
      view.joined = true;
      view.topic = ack.topic;
      view.members = new Set(ack.names);
      view.seen = Math.max(view.seen, ack.seq);
      ui.show(ack.room);
    } catch (error) {
      this.notice(error.message, "error");
    }
  }

  async part(room) {
    try {
      await this.request({ type: "part", room });
      const view = this.view(room);
      view.joined = false;
      view.members.clear();
      this.notice(`You left ${room}`, "event", room);
      ui.render();
    } catch (error) {
      this.notice(error.message, "error");
    }
  }

  async older(view) {
    if (!view.room || view.loading || view.atStart || !view.joined) return;
    view.loading = true;
    try {
      const request = { type: "history", room: view.id, limit: 50 };
      // The page before the oldest shown, or the newest page when nothing is shown yet.
      if (Number.isFinite(view.oldest)) request.before = view.oldest;
      const ack = await this.request(request);
      if (ack.messages.length === 0 && request.before !== undefined) view.atStart = true;
      ui.keepScroll(view, () => {
        for (const message of ack.messages) this.message(message, false);
      });
    } catch {
      // Offline: try again on the next scroll.
    } finally {
      view.loading = false;
    }
  }

  command(line) {
    const [word, ...rest] = line.slice(1).split(" ");
    const args = rest.join(" ").trim();
    const first = rest[0] ?? "";
    const after = rest.slice(1).join(" ").trim();
    const view = this.view(this.current);
    const room = view.room ? this.current : LOBBY;
    const show = (ack, text) => this.notice(text(ack), "event");
    const fail = (error) => this.notice(error.message, "error");
    switch (word.toLowerCase()) {
      case "me":
        return args ? this.say(args, true) : this.notice("Usage: /me ACTION", "error");
      case "nick":
        return this.request({ type: "nick", name: args }).then((ack) => {
          this.name = ack.name;
          history.replaceState(null, "", `?name=${encodeURIComponent(ack.name)}`);
          this.notice(`You are now ${ack.name}`);
          ui.render();
        }, fail);
      case "join":
        return args ? this.join(first) : this.notice("Usage: /join #ROOM", "error");
      case "part":
      case "leave":
        return this.part(first || room);
      case "room":
        return first ? ui.show(first) : this.notice("Usage: /room #ROOM", "error");
      case "msg":
      case "query":
        if (!first) return this.notice("Usage: /msg NAME TEXT", "error");
        if (!after) return ui.show(`@${first}`);
        ui.show(`@${first}`);
        return this.privately(first, after);
      case "who":
        return this.request({ type: "who", room: first || room }).then(
          (ack) => show(ack, (a) => `In ${a.room}: ${a.names.join(", ")}`),
          fail,
        );
      case "rooms":
        return this.request({ type: "rooms" }).then(
          (ack) =>
            show(
              ack,
              (a) =>
                a.rooms.map((r) => `${r.name} (${r.members})${r.topic ? `: ${r.topic}` : ""}`).join(
                  "\n",
                ),
            ),
          fail,
        );
      case "topic":
        return this.request(args ? { type: "topic", room, topic: args } : { type: "topic", room })
          .then((ack) => {
            this.view(ack.room).topic = ack.topic;
            ui.render();
            show(ack, (a) => a.topic ? `Topic of ${a.room}: ${a.topic}` : `${a.room} has no topic`);
          }, fail);
      case "whois":
        return this.request({ type: "whois", name: first }).then(
          (ack) =>
            show(
              ack,
              (a) =>
                `${a.name}: ${a.online ? "online" : "offline"}${
                  a.fingerprint ? `, key ${a.fingerprint}` : ""
                }${a.op ? ", operator" : ""}`,
            ),
          fail,
        );
      case "kick":
        return this.request({ type: "kick", name: first, ...(after ? { reason: after } : {}) })
          .then(() => this.notice(`Kicked ${first}`), fail);
      case "ban":
        return this.request({ type: "ban", target: first, ...(after ? { reason: after } : {}) })
          .then(() => this.notice(`Banned ${first}`), fail);
      case "unban":
        return this.request({ type: "unban", target: first })
          .then(() => this.notice(`Lifted the ban of ${first}`), fail);
      case "mute":
        return this.request({ type: "mute", name: first, ...(after ? { reason: after } : {}) })
          .then(() => this.notice(`Muted ${first}`), fail);
      case "unmute":
        return this.request({ type: "mute", name: first, duration: 0 })
          .then(() => this.notice(`Unmuted ${first}`), fail);
      case "history":
        return this.older(view);
      case "quit":
        this.stopped = true;
        return this.request({ type: "quit" }).catch(() => {});
      case "help":
        return this.notice(
          [
            "/me ACTION, /nick NEW, /join #ROOM, /part [#ROOM], /room #ROOM, /msg NAME TEXT,",
            "/who [#ROOM], /rooms, /topic [TEXT], /whois NAME, /history, /quit;",
            "operators: /kick, /ban, /unban, /mute, /unmute. //TEXT sends a line starting with /.",
            "Drop, paste or attach a file to send it.",
          ].join("\n"),
        );
      default:
        return this.notice(`Unknown command "/${word}"; /help lists them`, "error");
    }
  }

  // Files

  async sendFile(file) {
    const to = this.current.startsWith("@") ? this.current.slice(1) : this.current;
    const card = ui.fileCard(this.current, { name: file.name, size: file.size, from: this.name });
    card.state("Checking…");
    const hash = new Sha256();
    const reader = file.stream().getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      hash.update(value);
    }
    const sha256 = hash.hex();
    try {
      const ack = await this.request({
        type: "offer",
        to,
        name: file.name || "file",
        size: file.size,
        mime: file.type || "application/octet-stream",
        sha256,
      });
      this.outgoing.set(ack.transfer, { file, card, sha256 });
      card.state("Offered, waiting for an answer");
      card.cancel(() => this.request({ type: "cancel", transfer: ack.transfer }).catch(() => {}));
      if (PREVIEW_TYPES.has(file.type)) card.preview(file);
    } catch (error) {
      card.state(error.message, true);
    }
  }

  offer(frame) {
    const where = frame.to.startsWith("#") ? frame.to : `@${frame.from}`;
    const card = ui.fileCard(where, frame);
    this.offers.set(frame.transfer, { frame, card });
    card.state(`${formatSize(frame.size)} offered`);
    card.choose(
      () => this.accept(frame.transfer),
      () => {
        this.request({ type: "decline", transfer: frame.transfer }).catch(() => {});
        card.state("Declined");
      },
    );
    ui.arrived(
      this.view(where),
      !frame.to.startsWith("#"),
      `${frame.from} offers a file`,
      frame.name,
    );
  }

  async accept(transfer) {
    const offer = this.offers.get(transfer);
    if (offer === undefined) return;
    const { frame, card } = offer;
    let ack;
    try {
      ack = await this.request({ type: "accept", transfer });
    } catch (error) {
      return card.state(error.message, true);
    }
    card.state("Receiving…");
    const chunks = [];
    const hash = new Sha256();
    let received = 0;
    const data = new WebSocket(socketUrl());
    data.binaryType = "arraybuffer";
    card.cancel(() => {
      this.request({ type: "cancel", transfer }).catch(() => {});
      data.close();
    });
    data.onopen = () => data.send(JSON.stringify({ type: "data", token: ack.token }));
    data.onmessage = (event) => {
      if (typeof event.data === "string") {
        const answer = JSON.parse(event.data);
        if (answer.type === "error") card.state(answer.message, true);
        return;
      }
      const bytes = new Uint8Array(event.data);
      if (received + bytes.length > frame.size) return;
      chunks.push(bytes);
      hash.update(bytes);
      received += bytes.length;
      card.progress(received, frame.size);
    };
    data.onclose = () => {
      const ok = received === frame.size && hash.hex() === frame.sha256;
      this.request({ type: "received", transfer, ok }).catch(() => {});
      if (!ok) {
        return card.state(`Failed: ${formatSize(received)} arrived, or they were damaged`, true);
      }
      const type = PREVIEW_TYPES.has(frame.mime) ? frame.mime : "application/octet-stream";
      const blob = new Blob(chunks, { type });
      card.received(blob, frame);
    };
  }

  transfer(frame) {
    const outgoing = this.outgoing.get(frame.transfer);
    const incoming = this.offers.get(frame.transfer);
    const card = outgoing?.card ?? incoming?.card;
    if (card === undefined) return;
    switch (frame.state) {
      case "accepted":
        if (outgoing !== undefined) this.upload(outgoing, frame);
        return card.state(`${frame.by} accepted`);
      case "declined":
        return card.state(`${frame.by} declined`);
      case "received":
        return card.state(
          frame.ok
            ? `${frame.by} received it (SHA-256 checked)`
            : `${frame.by} received it damaged`,
          !frame.ok,
        );
      case "cancelled":
        return card.state(`Cancelled: ${frame.reason ?? ""}`, true);
      case "expired":
        return card.state("The offer expired");
    }
  }

  upload({ file, card }, frame) {
    const data = new WebSocket(socketUrl());
    data.binaryType = "arraybuffer";
    let ready = false;
    let taken = 0;
    let sent = 0;
    let wake;
    data.onopen = () => data.send(JSON.stringify({ type: "data", token: frame.token }));
    data.onmessage = async (event) => {
      if (typeof event.data !== "string") return;
      const answer = JSON.parse(event.data);
      if (answer.type === "error") return card.state(answer.message, true);
      if (answer.taken !== undefined) {
        taken = answer.taken;
        card.progress(taken, file.size);
        wake?.();
        return;
      }
      if (answer.ok !== true || ready) return;
      ready = true;
      const reader = file.stream().getReader();
      let buffered = new Uint8Array(0);
      for (;;) {
        const { done, value } = await reader.read();
        if (value !== undefined) {
          const joined = new Uint8Array(buffered.length + value.length);
          joined.set(buffered);
          joined.set(value, buffered.length);
          buffered = joined;
        }
        while (buffered.length >= CHUNK || (done && buffered.length > 0)) {
          while (sent - taken > WINDOW - CHUNK && data.readyState === WebSocket.OPEN) {
            await new Promise((resolve) => wake = resolve);
          }
          if (data.readyState !== WebSocket.OPEN) return;
          const chunk = buffered.subarray(0, CHUNK);
          data.send(chunk);
          sent += chunk.length;
          buffered = buffered.subarray(chunk.length);
        }
        if (done) break;
      }
    };
    data.onclose = () => wake?.();
  }
}

/** What the page shows. */
const ui = {
  started() {
    $("login").hidden = true;
    $("app").hidden = false;
    this.render();
    this.show(LOBBY);
    $("input").focus();
    if ("Notification" in window && Notification.permission === "default") {
      $("notify").hidden = false;
    }
  },

  loginError(message) {
    $("login").hidden = false;
    $("app").hidden = true;
    $("login-error").textContent = clean(message);
    $("login-name").focus();
  },

  status(online, text) {
    const status = $("status");
    status.textContent = online ? "" : text;
    status.classList.toggle("offline", !online);
    document.body.classList.toggle("offline", !online);
  },

  show(id) {
    const view = chat.view(id);
    chat.current = id;
    view.unread = 0;
    const log = $("log");
    log.replaceChildren(view.log);
    log.scrollTop = log.scrollHeight;
    $("side").classList.remove("open");
    this.render();
    $("input").focus();
    if (view.room && view.shown.size < 20) chat.older(view);
  },

  render() {
    const view = chat.views.get(chat.current);
    $("title").textContent = clean(chat.current);
    $("topic").textContent = clean(view?.topic ?? "");
    const item = (id, label, unread, onclick) => {
      const li = el("li", { class: id === chat.current ? "current" : "" }, el("bdi", {}, label));
      if (unread > 0) li.append(el("span", { class: "unread" }, String(unread)));
      li.dataset.id = id;
      li.onclick = onclick;
      return li;
    };
    const rooms = [];
    const people = [];
    for (const v of chat.views.values()) {
      if (v.room && v.joined) rooms.push(item(v.id, v.id, v.unread, () => this.show(v.id)));
      else if (!v.room) people.push(item(v.id, v.id.slice(1), v.unread, () => this.show(v.id)));
    }
    $("rooms").replaceChildren(...rooms);
    $("people").replaceChildren(...people);
    const members = view?.room ? [...view.members].sort((a, b) => a.localeCompare(b)) : [];
    $("members").replaceChildren(
      ...members.map((name) => {
        const li = el("li", {}, el("bdi", {}, name), name === chat.name ? " (you)" : null);
        li.onclick = () => name !== chat.name && this.show(`@${name}`);
        return li;
      }),
    );
    const unread = [...chat.views.values()].reduce((sum, v) => sum + v.unread, 0);
    document.title = `${unread > 0 ? `(${unread}) ` : ""}${clean(chat.current)} – chat`;
  },

  messageLine(frame, { mine = false, mention = false, pending = false } = {}) {
    const line = el(
      "div",
      {
        class: `line${mine ? " mine" : ""}${mention ? " mention" : ""}${pending ? " pending" : ""}`,
      },
      el("span", { class: "time" }, formatTime(frame.ts)),
    );
    if (frame.action) line.append(el("span", { class: "from" }, "* ", el("bdi", {}, frame.from)));
    // A notice (a bot's, a service's) reads -name-, as IRC clients show it.
    else if (frame.notice) {
      line.append(el("span", { class: "from" }, "-", el("bdi", {}, frame.from), "-"));
    } else line.append(el("span", { class: "from" }, el("bdi", {}, frame.from)));
    line.append(el("bdi", { class: "text" }, frame.text));
    return line;
  },

  noticeLine(text, kind) {
    return el("div", { class: `line ${kind}` }, text);
  },

  /** Adds a line to a view: messages in `seq` order, the rest at the end. */
  insert(view, line, seq) {
    const log = $("log");
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    if (seq !== undefined) {
      line.dataset.seq = String(seq);
      let before = null;
      for (let node = view.log.lastElementChild; node; node = node.previousElementSibling) {
        if (node.dataset.seq === undefined) continue;
        if (Number(node.dataset.seq) > seq) before = node;
        else break;
      }
      view.log.insertBefore(line, before);
    } else {
      view.log.append(line);
    }
    if (view.id === chat.current && atBottom) log.scrollTop = log.scrollHeight;
  },

  keepScroll(view, change) {
    const log = $("log");
    const fromBottom = log.scrollHeight - log.scrollTop;
    change();
    if (view.id === chat.current) log.scrollTop = log.scrollHeight - fromBottom;
  },

  arrived(view, mention, title, text) {
    if (view.id !== chat.current || document.hidden) {
      if (view.id !== chat.current) view.unread++;
      this.render();
    }
    if (
      mention && document.hidden && "Notification" in window &&
      Notification.permission === "granted"
    ) {
      new Notification(clean(title), { body: clean(text).slice(0, 200), tag: view.id });
    }
  },

  fileCard(where, { name, size, from }) {
    const view = chat.view(where);
    const label = el(
      "span",
      {},
      el("bdi", {}, from),
      ": ",
      el("bdi", {}, name),
      ` (${formatSize(size)})`,
    );
    const status = el("span", { class: "status" });
    const bar = el("progress", { max: "1", value: "0" });
    bar.hidden = true;
    const actions = el("span");
    const card = el("div", { class: "file" }, label, bar, status, actions);
    const line = el("div", { class: "line" }, card);
    this.insert(view, line);
    return {
      state(text, error = false) {
        status.textContent = clean(text);
        status.classList.toggle("offline", error);
        if (error || /received|declined|expired/i.test(text)) actions.replaceChildren();
      },
      progress(done, total) {
        bar.hidden = false;
        bar.value = total === 0 ? 1 : done / total;
      },
      choose(accept, decline) {
        const yes = el("button", { type: "button" }, "Accept");
        const no = el("button", { type: "button" }, "Decline");
        yes.onclick = () => {
          actions.replaceChildren();
          accept();
        };
        no.onclick = () => {
          actions.replaceChildren();
          decline();
        };
        actions.replaceChildren(yes, no);
      },
      cancel(stop) {
        const button = el("button", { type: "button" }, "Cancel");
        button.onclick = () => {
          actions.replaceChildren();
          stop();
        };
        actions.replaceChildren(button);
      },
      preview(blob) {
        const url = URL.createObjectURL(blob);
        card.append(el("img", { class: "preview", src: url, alt: "" }));
      },
      received(blob, frame) {
        const url = URL.createObjectURL(blob);
        actions.replaceChildren();
        status.textContent = "Received, SHA-256 checked";
        const link = el(
          "a",
          { href: url, download: clean(frame.name).replace(/[\\/]/g, "_") },
          "Save",
        );
        card.append(link);
        if (blob.type !== "application/octet-stream") {
          const open = el("a", { href: url, target: "_blank", rel: "noopener" });
          open.append(el("img", { class: "preview", src: url, alt: clean(frame.name) }));
          card.append(open);
        }
      },
    };
  },
};

const chat = new Chat();

function setup() {
  const input = $("input");
  const params = new URLSearchParams(location.search);
  const wanted = params.get("name");
  $("login").onsubmit = (event) => {
    event.preventDefault();
    const name = $("login-name").value.trim();
    if (!name) return;
    $("login-error").textContent = "";
    chat.stopped = false;
    chat.start(name);
  };
  $("compose").onsubmit = (event) => {
    event.preventDefault();
    submit();
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  input.addEventListener("input", () => {
    input.style.height = "auto";
    input.style.height = `${input.scrollHeight}px`;
  });
  input.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files ?? [])];
    if (files.length === 0) return;
    event.preventDefault();
    for (const file of files) chat.sendFile(file);
  });
  $("file").onchange = () => {
    for (const file of $("file").files) chat.sendFile(file);
    $("file").value = "";
  };
  const log = $("log");
  log.addEventListener("dragover", (event) => {
    event.preventDefault();
    log.classList.add("dragging");
  });
  log.addEventListener("dragleave", () => log.classList.remove("dragging"));
  log.addEventListener("drop", (event) => {
    event.preventDefault();
    log.classList.remove("dragging");
    for (const file of event.dataTransfer?.files ?? []) chat.sendFile(file);
  });
  log.addEventListener("scroll", () => {
    if (log.scrollTop < 60) chat.older(chat.view(chat.current));
  });
  $("join-form").onsubmit = (event) => {
    event.preventDefault();
    const room = $("join-room").value.trim();
    if (room) chat.join(room);
    $("join-room").value = "";
  };
  $("menu").onclick = () => $("side").classList.toggle("open");
  $("notify").onclick = async () => {
    await Notification.requestPermission();
    $("notify").hidden = true;
  };
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) {
      chat.view(chat.current).unread = 0;
      ui.render();
    }
  });
  if (wanted) chat.start(wanted);
  else {
    $("login").hidden = false;
    $("login-name").focus();
  }

  function submit() {
    const text = input.value;
    if (text.trim() === "") return;
    input.value = "";
    input.style.height = "auto";
    if (text.startsWith("//")) chat.say(text.slice(1));
    else if (text.startsWith("/")) chat.command(text.trim());
    else chat.say(text);
  }
}

// Exposed for the tests and the curious: the state of the page, read-only in spirit.
globalThis.chat = chat;
setup();
