import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { ProtocolError } from "../protocol/errors.ts";
import { parseClientFrame, parseServerFrame, requestIdOf } from "../protocol/frames.ts";

/** Parses a line and returns the error it throws, failing when it parses. */
function rejection(line: string): ProtocolError {
  try {
    parseClientFrame(line);
  } catch (error) {
    ok(error instanceof ProtocolError, `threw ${error}`);
    return error;
  }
  throw new Error(`Parsed without an error: ${line.slice(0, 200)}`);
}

function codeOf(line: string): string {
  return rejection(line).code;
}

const json = JSON.stringify;

Deno.test("parseClientFrame reads a valid frame of each type", async (t) => {
  const frames: Record<string, unknown>[] = [
    { type: "hello", id: 1, v: 1, name: "alice" },
    { type: "hello", id: "h-1", v: 1, name: "爱丽丝", client: "chat/0.1.0" },
    { type: "send", id: 2, room: "#lobby", text: "你好世界 👨‍👩‍👧" },
    { type: "send", id: 3, room: "#lobby", text: "waves", action: true },
    { type: "send", id: 4, room: "#lobby", text: "hi", action: false },
    { type: "dm", id: 5, to: "bob", text: "psst" },
    { type: "dm", id: 6, to: "bob", text: "winks", action: true },
    { type: "nick", id: 7, name: "alicia" },
    { type: "who", id: 8 },
    { type: "who", id: 9, room: "#lobby" },
    { type: "quit", id: 10 },
    { type: "ping", id: 11 },
    { type: "ping", id: 0 },
    { type: "ping", id: Number.MAX_SAFE_INTEGER },
    { type: "ping", id: "x".repeat(64) },
  ];
  for (const frame of frames) {
    await t.step(json(frame).slice(0, 80), () => {
      deepEqual(parseClientFrame(json(frame)), frame);
    });
  }
});

Deno.test("parseClientFrame ignores unknown fields", () => {
  const frame = parseClientFrame('{"type":"ping","id":1,"future":{"x":[1,2,3]}}');
  equal(frame.type, "ping");
  equal(frame.id, 1);
});

Deno.test("parseClientFrame rejects text that is not JSON with bad_json", async (t) => {
  for (
    const line of ["", " ", "{", "not json", "{'type':'ping','id':1}", '{"type":"ping",}', "\uFEFF"]
  ) {
    await t.step(json(line), () => equal(codeOf(line), "bad_json"));
  }
});

Deno.test("parseClientFrame rejects JSON that is not an object with bad_json", async (t) => {
  for (const line of ["[]", '[{"type":"ping","id":1}]', "42", "-1.5", "null", '"ping"', "true"]) {
    await t.step(line, () => equal(codeOf(line), "bad_json"));
  }
});

Deno.test("parseClientFrame rejects fields of the wrong type with bad_request", async (t) => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ["text as number", { type: "send", id: 1, room: "#lobby", text: 42 }],
    ["text missing", { type: "send", id: 1, room: "#lobby" }],
    ["room as array", { type: "send", id: 1, room: ["#lobby"], text: "hi" }],
    ["action as string", { type: "send", id: 1, room: "#lobby", text: "hi", action: "yes" }],
    ["action as null", { type: "dm", id: 1, to: "bob", text: "hi", action: null }],
    ["v as string", { type: "hello", id: 1, v: "1", name: "alice" }],
    ["name as number", { type: "hello", id: 1, v: 1, name: 7 }],
    ["client as number", { type: "hello", id: 1, v: 1, name: "alice", client: 2 }],
    ["nick name missing", { type: "nick", id: 1 }],
    ["who room as null", { type: "who", id: 1, room: null }],
    ["type missing", { id: 1 }],
    ["type as number", { type: 1, id: 1 }],
    ["type as object", { type: { name: "ping" }, id: 1 }],
    ["id missing", { type: "ping" }],
    ["id as float", { type: "ping", id: 1.5 }],
    ["id negative", { type: "ping", id: -1 }],
    ["id beyond safe integers", { type: "ping", id: 2 ** 53 }],
    ["id as empty string", { type: "ping", id: "" }],
    ["id as 65-character string", { type: "ping", id: "x".repeat(65) }],
    ["id as object", { type: "ping", id: { n: 1 } }],
    ["id as array", { type: "ping", id: [1] }],
    ["id as null", { type: "ping", id: null }],
    ["id as boolean", { type: "ping", id: true }],
  ];
  for (const [name, frame] of cases) {
    await t.step(name, () => equal(codeOf(json(frame)), "bad_request"));
  }
});

Deno.test("parseClientFrame names the wrong field in its message", () => {
  const error = rejection(json({ type: "send", id: 1, room: "#lobby", text: 42 }));
  ok(error.message.includes('"text"'), error.message);
});

Deno.test("parseClientFrame rejects an unknown type with unknown_type", async (t) => {
  for (const type of ["shout", "HELLO", "", "welcome", "ack"]) {
    await t.step(json(type), () => equal(codeOf(json({ type, id: 1 })), "unknown_type"));
  }
});

Deno.test("parseClientFrame keeps the message about an unknown type short", () => {
  const error = rejection(json({ type: "x".repeat(100_000), id: 1 }));
  equal(error.code, "unknown_type");
  ok(error.message.length < 200, `message is ${error.message.length} characters long`);
});

Deno.test("parseClientFrame treats Object.prototype names as unknown types", async (t) => {
  const names = [
    "__proto__",
    "constructor",
    "toString",
    "hasOwnProperty",
    "valueOf",
    "isPrototypeOf",
    "__defineGetter__",
  ];
  for (const type of names) {
    await t.step(type, () => {
      const error = rejection(json({ type, id: 1 }));
      equal(error.code, "unknown_type");
      equal(requestIdOf(error), 1);
    });
  }
});

Deno.test("parseClientFrame does not let a __proto__ key change the frame", () => {
  equal(codeOf('{"__proto__":{"type":"ping","id":1}}'), "bad_request");
  const frame = parseClientFrame('{"type":"ping","id":1,"__proto__":{"polluted":true}}');
  equal(frame.type, "ping");
  equal((frame as unknown as Record<string, unknown>).polluted, undefined);
  equal(({} as Record<string, unknown>).polluted, undefined);
});

Deno.test("requestIdOf gives back the id of a rejected frame when it was valid", async (t) => {
  const cases: Array<[string, string, string | number | undefined]> = [
    ["number id, wrong field", json({ type: "send", id: 7, room: "#lobby", text: 1 }), 7],
    ["string id, wrong field", json({ type: "send", id: "req-7", room: 1, text: "hi" }), "req-7"],
    ["zero id, unknown type", json({ type: "shout", id: 0 }), 0],
    ["64-character id", json({ type: "nick", id: "i".repeat(64) }), "i".repeat(64)],
    ["id with a missing type", json({ id: 9 }), 9],
    ["float id", json({ type: "send", id: 1.5, room: "#lobby", text: 1 }), undefined],
    ["negative id", json({ type: "ping", id: -3 }), undefined],
    ["empty string id", json({ type: "shout", id: "" }), undefined],
    ["65-character id", json({ type: "ping", id: "i".repeat(65) }), undefined],
    ["object id", json({ type: "ping", id: { id: 1 } }), undefined],
    ["not JSON", "{", undefined],
    ["not an object", "[1]", undefined],
  ];
  for (const [name, line, id] of cases) {
    await t.step(name, () => equal(requestIdOf(rejection(line)), id));
  }
});

Deno.test("parseClientFrame survives 10,000 levels of nesting", async (t) => {
  const depth = 10_000;
  const arrays = "[".repeat(depth) + "]".repeat(depth);
  const objects = '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
  await t.step("nested arrays", () => equal(codeOf(arrays), "bad_json"));
  await t.step("nested objects without a type", () => equal(codeOf(objects), "bad_request"));
  await t.step("nested arrays as the type", () => {
    equal(codeOf(`{"type":${arrays},"id":1}`), "bad_request");
  });
  await t.step("nested objects as the id", () => {
    equal(codeOf(`{"type":"ping","id":${objects}}`), "bad_request");
  });
  await t.step("nested arrays in an unknown field", () => {
    equal(parseClientFrame(`{"type":"ping","id":1,"extra":${arrays}}`).type, "ping");
  });
  await t.step("unbalanced nesting", () => equal(codeOf("[".repeat(depth)), "bad_json"));
});

Deno.test("parseClientFrame throws only ProtocolError", () => {
  throws(() => parseClientFrame("nope"), ProtocolError);
  throws(() => parseClientFrame("null"), ProtocolError);
  throws(() => parseClientFrame(json({ type: "ping" })), ProtocolError);
});

Deno.test({
  name: "parseClientFrame accepts a string id of 64 code points outside the BMP",
  fn() {
    const id = "😀".repeat(64);
    deepEqual(parseClientFrame(json({ type: "ping", id })), { type: "ping", id });
  },
});

Deno.test("parseServerFrame refuses what a client must not trust", async (t) => {
  const message = { type: "message", room: "#lobby", from: "bob", text: "hi", ts: "", seq: 1 };
  const offer = {
    type: "offer",
    transfer: "abc",
    from: "bob",
    to: "alice",
    name: "a.txt",
    size: 5,
    mime: "text/plain",
    sha256: "00",
    expires: "",
  };
  await t.step("valid frames pass, unknown fields and all", () => {
    deepEqual(parseServerFrame(JSON.stringify({ ...message, extra: 1 })), {
      ...message,
      extra: 1,
    });
    deepEqual(parseServerFrame('{"type":"ping"}'), { type: "ping" });
    deepEqual(parseServerFrame(JSON.stringify(offer)), offer);
  });
  for (
    const [label, frame, code] of [
      ["a message without text", { ...message, text: undefined }, "bad_request"],
      ["from as a list", { ...message, from: ["bob"] }, "bad_request"],
      ["an offer id as a number", { ...offer, transfer: 42 }, "bad_request"],
      ['size "big"', { ...offer, size: "big" }, "bad_request"],
      ["a negative size", { ...offer, size: -1 }, "bad_request"],
      [
        "an unknown transfer state",
        { type: "transfer", transfer: "a", state: "x", by: "b" },
        "bad_request",
      ],
      [
        "a history page holding a non-message",
        { type: "ack", id: 1, messages: [{}] },
        "bad_request",
      ],
      ["rooms that are not a list", { type: "ack", id: 1, rooms: "#a" }, "bad_request"],
      ["a welcome without rooms", { type: "welcome", id: 1 }, "bad_request"],
      ["an unknown type", { type: "surprise" }, "unknown_type"],
      ["a list", [], "bad_json"],
    ] as const
  ) {
    await t.step(label, () => {
      throws(
        () => parseServerFrame(JSON.stringify(frame)),
        (error: ProtocolError) => error.code === code,
      );
    });
  }
  await t.step("the request id of a bad answer is kept, so the request can fail", () => {
    try {
      parseServerFrame('{"type":"ack","id":7,"seq":"x"}');
      throw new Error("not refused");
    } catch (error) {
      equal(requestIdOf(error as ProtocolError), 7);
    }
  });
});

Deno.test("a leave's reason is an optional text, and what a client does not know is ignored", () => {
  const leave = { type: "leave", room: "#a", name: "bob", reason: "part", ts: "t" };
  deepEqual(parseServerFrame(JSON.stringify({ ...leave, message: "bye" })), {
    ...leave,
    message: "bye",
  });
  deepEqual(parseServerFrame(JSON.stringify({ ...leave, later: [1] })), { ...leave, later: [1] });
  throws(() => parseServerFrame(JSON.stringify({ ...leave, message: 1 })));
  deepEqual(parseClientFrame('{"type":"part","id":1,"room":"#a","reason":"bye"}'), {
    type: "part",
    id: 1,
    room: "#a",
    reason: "bye",
  });
  throws(() => parseClientFrame('{"type":"quit","id":1,"reason":5}'));
});
