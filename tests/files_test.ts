import { equal, ok } from "node:assert/strict";
import { safeFileName } from "../_client/files.ts";
import { Prng } from "./_prng.ts";

const SEED = 0xf11e_5afe;
const encoder = new TextEncoder();

const DEVICES = [
  "CON",
  "PRN",
  "AUX",
  "NUL",
  "CONIN$",
  "CONOUT$",
  ...["COM", "LPT"].flatMap((kind) => [..."0123456789¹²³"].map((digit) => `${kind}${digit}`)),
];
const DEVICE = new RegExp(`^(${DEVICES.map((d) => d.replace("$", "\\$")).join("|")})$`, "i");
const INVISIBLE_OR_BREAKING =
  /[\p{Default_Ignorable_Code_Point}\p{Cf}\p{Zl}\p{Zp}\p{Cc}\p{Bidi_Control}]/u;
const WINDOWS_FORBIDDEN = /[<>:"/\\|?*]/;

/** Every property a name written to disk must have, on Linux, macOS and Windows. */
function assertSafe(input: string, safe: string): void {
  const why = `${JSON.stringify(input)} became ${JSON.stringify(safe)}`;
  ok(safe.length > 0, `empty: ${why}`);
  ok(encoder.encode(safe).length <= 200, `over 200 bytes: ${why}`);
  ok(!WINDOWS_FORBIDDEN.test(safe), `separator or character Windows forbids: ${why}`);
  ok(!INVISIBLE_OR_BREAKING.test(safe), `control, invisible or bidi character: ${why}`);
  ok(!/[\s.]$/u.test(safe), `trailing dot or space: ${why}`);
  ok(!/^[\s.]/u.test(safe), `leading dot or space: ${why}`);
  ok(safe !== "." && safe !== "..", `a directory: ${why}`);
  ok(!DEVICE.test(safe.split(".")[0]!.replace(/[ .]+$/, "")), `a device name: ${why}`);
  ok(safe.isWellFormed(), `a lone surrogate: ${why}`);
  equal(safe, safe.normalize("NFC"), `not NFC: ${why}`);
  equal(safeFileName(safe), safe, `not stable: ${why}`);
}

/** Pieces hostile names are made of. */
const PIECES: readonly string[] = [
  ...DEVICES,
  ...DEVICES.map((d) => d.toLowerCase()),
  ".",
  "..",
  "...",
  " ",
  "\u3000",
  "\u00a0",
  "/",
  "\\",
  ":",
  "*",
  "?",
  '"',
  "<",
  ">",
  "|",
  "\u0000",
  "\u001b[31m",
  "\u007f",
  "\u0085",
  "\r\n",
  "\t",
  "\u061c",
  "\u200b",
  "\u200d",
  "\u200e",
  "\u200f",
  "\u202a",
  "\u202e",
  "\u2066",
  "\u2069",
  "\u2028",
  "\u2029",
  "\u00ad",
  "\u034f",
  "\u180b",
  "\u180e",
  "\ufe0f",
  "\ufeff",
  "\u{e0001}",
  "\u{e0100}",
  "\ud800",
  "\udfff",
  "e\u0301",
  "\u0301",
  "文件名",
  "照片",
  "😀",
  "👩‍👩‍👧",
  "🇫🇷",
  "Ω",
  "x",
  "file",
  ".txt",
  ".tar.gz",
  ".png",
  "." + "y".repeat(300),
  ".ÿ".repeat(80),
  "y".repeat(250),
  "文".repeat(90),
  "😀".repeat(70),
  "a" + "\u0301".repeat(300),
];

function randomName(prng: Prng): string {
  let name = "";
  const pieces = prng.range(1, 8);
  for (let i = 0; i < pieces; i++) {
    name += prng.chance(0.15) ? String.fromCodePoint(prng.int(0x110000)) : prng.pick(PIECES);
  }
  return name;
}

Deno.test("safeFileName makes the named hostile file names safe", async (t) => {
  for (
    const [name, safe] of [
      ["x." + "y".repeat(300), "x." + "y".repeat(198)],
      ["CON.tar.gz", "_CON.tar.gz"],
      ["con .txt", "_con .txt"],
      ["con. .txt", "_con. .txt"],
      ["COM¹.txt", "_COM¹.txt"],
      ["lpt9", "_lpt9"],
      ["nul.", "_nul"],
      ["aux \u00ad", "_aux"],
      ["conin$.log", "_conin$.log"],
      ["console.txt", "console.txt"],
      ["a\u061cb.txt", "a_b.txt"],
      ["a\u2028b\u2029c.txt", "a_b_c.txt"],
      ["so\u00adft.txt", "soft.txt"],
      ["\u202egnp.exe", "_gnp.exe"],
      ["..", "file"],
      [". . .", "file"],
      ["\u200b", "file"],
      ["a/b\\c:d", "c_d"],
      ["文".repeat(100) + ".txt", "文".repeat(65) + ".txt"],
    ] as const
  ) {
    await t.step(JSON.stringify(name), () => {
      equal(safeFileName(name), safe);
      assertSafe(name, safe);
    });
  }
});

Deno.test("safeFileName returns a safe name for every random and hostile name", () => {
  const prng = new Prng(SEED);
  for (let i = 0; i < 20_000; i++) {
    const name = randomName(prng);
    assertSafe(name, safeFileName(name));
  }
  for (const device of DEVICES) {
    for (const suffix of ["", ".", " ", " .", ". ", ".txt", ".tar.gz", " .txt", "..txt"]) {
      const name = device + suffix;
      assertSafe(name, safeFileName(name));
    }
  }
});

Deno.test("safeFileName finishes quickly on very long names", () => {
  // Each of these loops forever, or for seconds, in a shortening loop that removes one character
  // at a time; the whole set takes milliseconds when it is linear.
  for (
    const name of [
      "x." + "y".repeat(1_000_000),
      "y".repeat(1_000_000) + ".png",
      "文".repeat(500_000),
      "a" + "\u0301".repeat(100_000) + ".txt",
      "/".repeat(100_000),
      ".".repeat(100_000),
    ]
  ) {
    assertSafe(name.slice(0, 40), safeFileName(name));
  }
});
