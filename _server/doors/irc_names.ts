/**
 * How chat names and rooms appear to IRC clients, and back (PROTOCOL.md,
 * section 20.3).
 *
 * A name made only of ASCII letters, digits, `_` and `-`, starting with a
 * letter, is its own nick. Any other name (`小明`, `josé`, `a.b`, `2pac`) is
 * encoded: its ASCII letters, digits, `_` and `-` are kept in order, then
 * comes `|`, then the positions and code points of the other characters in
 * the Bootstring encoding of RFC 3492 (Punycode, with these as the basic
 * characters). A leading `_` is added when the kept part does not start with
 * a letter. `|` never occurs in a name, so an encoded nick cannot collide
 * with a plain one, and the encoding is undone exactly: `/msg` to the nick
 * reaches the name.
 *
 * @module
 */

import { checkName, isRoomName } from "../../protocol/names.ts";

const BASE = 36;
const T_MIN = 1;
const T_MAX = 26;
const SKEW = 38;
const DAMP = 700;
const INITIAL_BIAS = 72;
/** `.`, the lowest code point a name may hold that is not kept as is. */
const INITIAL_N = 0x2e;
const MARK = "|";

const PLAIN = /^[A-Za-z][A-Za-z0-9_-]*$/;

function isBasic(code: number): boolean {
  return (code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x5a) ||
    (code >= 0x61 && code <= 0x7a) || code === 0x5f || code === 0x2d;
}

function digit(value: number): string {
  return String.fromCharCode(value < 26 ? 0x61 + value : 0x30 + value - 26);
}

function valueOf(char: number): number {
  if (char >= 0x30 && char <= 0x39) return char - 0x30 + 26;
  if (char >= 0x41 && char <= 0x5a) return char - 0x41;
  if (char >= 0x61 && char <= 0x7a) return char - 0x61;
  return BASE;
}

function adapt(delta: number, points: number, first: boolean): number {
  delta = first ? Math.floor(delta / DAMP) : delta >> 1;
  delta += Math.floor(delta / points);
  let k = 0;
  while (delta > ((BASE - T_MIN) * T_MAX) >> 1) {
    delta = Math.floor(delta / (BASE - T_MIN));
    k += BASE;
  }
  return k + Math.floor(((BASE - T_MIN + 1) * delta) / (delta + SKEW));
}

function threshold(k: number, bias: number): number {
  return k <= bias ? T_MIN : k >= bias + T_MAX ? T_MAX : k - bias;
}

/** The Bootstring deltas of the characters of `input` that are not basic. */
function encodeDeltas(input: number[]): string {
  let n = INITIAL_N;
  let delta = 0;
  let bias = INITIAL_BIAS;
  let handled = input.filter(isBasic).length;
  const basic = handled;
  let output = "";
  while (handled < input.length) {
    let m = Infinity;
    for (const code of input) if (!isBasic(code) && code >= n && code < m) m = code;
    delta += (m - n) * (handled + 1);
    n = m;
    for (const code of input) {
      if (isBasic(code) || code < n) delta++;
      else if (code === n) {
        let q = delta;
        for (let k = BASE;; k += BASE) {
          const t = threshold(k, bias);
          if (q < t) break;
          output += digit(t + ((q - t) % (BASE - t)));
          q = Math.floor((q - t) / (BASE - t));
        }
        output += digit(q);
        bias = adapt(delta, handled + 1, handled === basic);
        delta = 0;
        handled++;
      }
    }
    delta++;
    n++;
  }
  return output;
}

/** Undoes {@linkcode encodeDeltas}, or `undefined` when the deltas are not well formed. */
function decodeDeltas(basic: string, deltas: string): string | undefined {
  const output = [...basic].map((char) => char.codePointAt(0)!);
  let n = INITIAL_N;
  let bias = INITIAL_BIAS;
  let i = 0;
  let at = 0;
  while (at < deltas.length) {
    const old = i;
    let w = 1;
    for (let k = BASE;; k += BASE) {
      if (at >= deltas.length) return undefined;
      const value = valueOf(deltas.charCodeAt(at++));
      if (value >= BASE) return undefined;
      i += value * w;
      const t = threshold(k, bias);
      if (value < t) break;
      w *= BASE - t;
      if (i > 0x10ffff * (output.length + 1)) return undefined;
    }
    bias = adapt(i - old, output.length + 1, old === 0);
    n += Math.floor(i / (output.length + 1));
    i %= output.length + 1;
    if (n > 0x10ffff || isBasic(n)) return undefined;
    output.splice(i++, 0, n);
  }
  return String.fromCodePoint(...output);
}

/**
 * The IRC nick that shows a chat name.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { nickOf } from "./irc_names.ts";
 *
 * equal(nickOf("alice"), "alice");
 * equal(nickOf("小明"), "_|bhto6u");
 * ```
 *
 * @param name A valid chat name.
 * @returns The nick.
 */
export function nickOf(name: string): string {
  if (PLAIN.test(name)) return name;
  const codes = [...name].map((char) => char.codePointAt(0)!);
  const basic = String.fromCodePoint(...codes.filter(isBasic));
  const prefix = /^[A-Za-z]/.test(basic) ? "" : "_";
  return `${prefix}${basic}${MARK}${encodeDeltas(codes)}`;
}

/**
 * The chat name an IRC nick stands for: the nick itself when it has no `|`,
 * else the decoded name. Nothing is checked beyond the encoding; the name
 * rules are the core's.
 *
 * @param nick What an IRC client sent.
 * @returns The name, or `undefined` when the nick is a malformed encoding.
 */
export function nameOf(nick: string): string | undefined {
  const mark = nick.lastIndexOf(MARK);
  if (mark === -1) return nick;
  const kept = nick.slice(0, mark);
  const basic = kept.startsWith("_") ? kept.slice(1) : kept;
  if (![...basic].every((char) => isBasic(char.codePointAt(0)!))) return undefined;
  const name = decodeDeltas(basic, nick.slice(mark + 1));
  if (name === undefined) return undefined;
  // Only the form nickOf() makes is accepted, so each name has one nick.
  const checked = checkName(name);
  if (!checked.ok || nickOf(checked.name).toLowerCase() !== nick.toLowerCase()) return undefined;
  return checked.name;
}

/**
 * Whether an IRC channel name names a room: rooms are channels of the same
 * name.
 *
 * @param channel The channel.
 * @returns Whether it is a valid room name.
 */
export function isChannel(channel: string): boolean {
  return isRoomName(channel);
}
