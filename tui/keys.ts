/**
 * Decode the bytes a terminal sends in raw mode into key events.
 *
 * Works with the input of xterm-compatible terminals on Linux and macOS, rxvt, the Linux
 * console, and Windows Terminal or conhost with virtual terminal input enabled. Input may
 * arrive in pieces of any size: UTF-8 characters, escape sequences and bracketed pastes split
 * across reads are put back together.
 *
 * @module
 */

/** Names of the keys that do not produce text. */
export type KeyName =
  | "enter"
  | "tab"
  | "backspace"
  | "delete"
  | "insert"
  | "escape"
  | "up"
  | "down"
  | "left"
  | "right"
  | "home"
  | "end"
  | "page-up"
  | "page-down";

/** Text typed on the keyboard: one or more printable characters, never a control character. */
export interface TextEvent {
  /** The kind of event. */
  type: "text";
  /** The characters typed, in order. */
  text: string;
}

/**
 * Text pasted in bracketed paste mode, delivered whole however many reads it took. Line
 * breaks (`"\r\n"`, `"\r"`) are normalised to `"\n"`; anything else is kept as sent.
 */
export interface PasteEvent {
  /** The kind of event. */
  type: "paste";
  /** The pasted text. */
  text: string;
}

/**
 * A letter or symbol pressed with Ctrl, such as Ctrl-A (`key: "a"`) or Ctrl-] (`key: "]"`).
 * Ctrl-Space and Ctrl-@ give `key: "@"`. Ctrl-H, Ctrl-I, Ctrl-J, Ctrl-M and Ctrl-[ send the
 * same bytes as Backspace, Tab, Enter and Escape and are reported as those keys.
 */
export interface CtrlKeyEvent {
  /** The kind of event. */
  type: "ctrl";
  /** The lowercase letter or the symbol pressed with Ctrl. */
  key: string;
  /** Present and `true` when Alt was held too. */
  alt?: true;
}

/** A printable character pressed with Alt (Option, Meta), such as Alt-b (`key: "b"`). */
export interface AltKeyEvent {
  /** The kind of event. */
  type: "alt";
  /** The character pressed with Alt. */
  key: string;
}

/** A key that does not produce text, possibly with modifiers, such as Ctrl-Left. */
export interface NamedKeyEvent {
  /** The key pressed. */
  type: KeyName;
  /** Present and `true` when Ctrl was held. */
  ctrl?: true;
  /** Present and `true` when Alt (Option, Meta) was held. */
  alt?: true;
  /** Present and `true` when Shift was held. */
  shift?: true;
}

/** One key press or paste, told apart by `type`. */
export type KeyEvent = TextEvent | PasteEvent | CtrlKeyEvent | AltKeyEvent | NamedKeyEvent;

/** Options for {@linkcode KeyDecoder}. */
export interface KeyDecoderOptions {
  /**
   * Largest paste kept, in bytes. The rest of a longer paste is dropped. The default is well
   * above the longest message a server accepts.
   *
   * @default {65536}
   */
  maxPasteBytes?: number;
}

const _EMPTY = new Uint8Array(0);
const _INCOMPLETE = -1;
const _ESC = 0x1b;
const _PASTE_END = new Uint8Array([0x1b, 0x5b, 0x32, 0x30, 0x31, 0x7e]); // ESC [ 2 0 1 ~
/** Longest control sequence accepted before it is dropped as garbage. */
const _MAX_SEQUENCE = 64;

const _decoder = new TextDecoder("utf-8", { ignoreBOM: true });

/** Keys sent as `ESC [ <code> ~`. */
const _TILDE_KEYS: Record<number, KeyName> = {
  1: "home",
  2: "insert",
  3: "delete",
  4: "end",
  5: "page-up",
  6: "page-down",
  7: "home",
  8: "end",
};

/** Keys sent as `ESC [ <final>` or `ESC O <final>`. */
const _LETTER_KEYS: Record<string, KeyName> = {
  A: "up",
  B: "down",
  C: "right",
  D: "left",
  H: "home",
  F: "end",
};

/** Application keypad keys sent as `ESC O <final>`. */
const _KEYPAD: Record<string, string> = {
  j: "*",
  k: "+",
  l: ",",
  m: "-",
  n: ".",
  o: "/",
  p: "0",
  q: "1",
  r: "2",
  s: "3",
  t: "4",
  u: "5",
  v: "6",
  w: "7",
  x: "8",
  y: "9",
  X: "=",
};

function _utf8Length(lead: number): number {
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  return 1;
}

/** Returns where the complete UTF-8 characters in `bytes[start, end)` end. */
function _completeEnd(bytes: Uint8Array, start: number, end: number): number {
  for (let k = end - 1; k >= start && k >= end - 4; k--) {
    const byte = bytes[k];
    if (byte !== undefined && (byte < 0x80 || byte > 0xbf)) {
      return end - k < _utf8Length(byte) ? k : end;
    }
  }
  return end;
}

/** Whether `byte` is in `[low, high]`; `false` past the end of the input. */
function _between(byte: number | undefined, low: number, high: number): boolean {
  return byte !== undefined && byte >= low && byte <= high;
}

/** Whether `byte` is printable text (not a C0 control or DEL); `false` past the end. */
function _isText(byte: number | undefined): boolean {
  return byte !== undefined && byte >= 0x20 && byte !== 0x7f;
}

function _withModifiers(type: KeyName, modifier: number): NamedKeyEvent {
  const event: NamedKeyEvent = { type };
  const bits = Number.isInteger(modifier) && modifier > 1 ? modifier - 1 : 0;
  if (bits & 4) event.ctrl = true;
  if (bits & (2 | 8)) event.alt = true;
  if (bits & 1) event.shift = true;
  return event;
}

function _withAlt(event: KeyEvent): KeyEvent {
  switch (event.type) {
    case "text":
      return { type: "alt", key: event.text };
    case "paste":
    case "alt":
      return event;
    default:
      return { ...event, alt: true };
  }
}

function _concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const result = new Uint8Array(a.length + b.length);
  result.set(a);
  result.set(b, a.length);
  return result;
}

/** Counts how many bytes at the end of `bytes[start, end)` begin the paste terminator. */
function _terminatorPrefix(bytes: Uint8Array, start: number, end: number): number {
  for (let size = Math.min(_PASTE_END.length - 1, end - start); size > 0; size--) {
    let matches = true;
    for (let k = 0; k < size && matches; k++) {
      matches = bytes[end - size + k] === _PASTE_END[k];
    }
    if (matches) return size;
  }
  return 0;
}

function _indexOfTerminator(bytes: Uint8Array, start: number): number {
  for (let k = bytes.indexOf(_ESC, start); k !== -1; k = bytes.indexOf(_ESC, k + 1)) {
    if (k + _PASTE_END.length > bytes.length) return -1;
    let matches = true;
    for (let m = 1; m < _PASTE_END.length && matches; m++) {
      matches = bytes[k + m] === _PASTE_END[m];
    }
    if (matches) return k;
  }
  return -1;
}

/**
 * Turns raw terminal input into {@linkcode KeyEvent}s.
 *
 * Feed every chunk read from the terminal to {@linkcode KeyDecoder.decode}. A chunk that ends
 * in the middle of a character or escape sequence leaves it pending until the next chunk.
 * A lone Escape press cannot be told apart from the start of a sequence, so it stays pending
 * too: when {@linkcode KeyDecoder.pending} is `true` after a chunk, call
 * {@linkcode KeyDecoder.flush} if no more input arrives within a short time (say 50 ms).
 *
 * Enter is reported once for `"\r"`, `"\n"` or `"\r\n"`, even when the pair is split across
 * reads. Escape sequences that are not understood are dropped whole, never typed as text.
 * Operating system commands (`ESC ]`) and device control strings (`ESC P`) are not taken
 * apart: those bytes read as Alt-] and Alt-P.
 *
 * @example Decode keys split across reads
 * ```ts
 * import assert from "node:assert/strict";
 * import { KeyDecoder } from "./keys.ts";
 *
 * const decoder = new KeyDecoder();
 * const bytes = new TextEncoder().encode("你\x1b[D\r");
 * assert.deepEqual(decoder.decode(bytes.subarray(0, 2)), []);
 * assert.deepEqual(decoder.decode(bytes.subarray(2, 5)), [{ type: "text", text: "你" }]);
 * assert.deepEqual(decoder.decode(bytes.subarray(5)), [{ type: "left" }, { type: "enter" }]);
 * ```
 *
 * @example Tell a lone Escape from the start of a sequence
 * ```ts
 * import assert from "node:assert/strict";
 * import { KeyDecoder } from "./keys.ts";
 *
 * const decoder = new KeyDecoder();
 * assert.deepEqual(decoder.decode(new Uint8Array([0x1b])), []);
 * assert.equal(decoder.pending, true);
 * assert.deepEqual(decoder.flush(), [{ type: "escape" }]);
 * ```
 */
export class KeyDecoder {
  #pending: Uint8Array = _EMPTY;
  #afterCarriageReturn = false;
  #pasting = false;
  #paste: Uint8Array[] = [];
  #pasteBytes = 0;
  #maxPasteBytes: number;

  /**
   * Creates a decoder with nothing pending.
   *
   * @param options The paste size limit.
   */
  constructor(options?: KeyDecoderOptions) {
    this.#maxPasteBytes = options?.maxPasteBytes ?? 64 * 1024;
  }

  /**
   * Whether bytes of an incomplete character or escape sequence are held back, so that
   * {@linkcode KeyDecoder.flush} would report them. A paste in progress does not count: it
   * only ends with its closing sequence.
   *
   * @returns `true` when a flush would do something.
   */
  get pending(): boolean {
    return !this.#pasting && this.#pending.length > 0;
  }

  /**
   * Whether a bracketed paste has started and not yet ended.
   *
   * @returns `true` inside a paste.
   */
  get pasting(): boolean {
    return this.#pasting;
  }

  /**
   * Decodes the next chunk of input.
   *
   * @param bytes Bytes as read from the terminal.
   * @returns The events completed by this chunk, in order; consecutive text is joined into one
   * event.
   */
  decode(bytes: Uint8Array): KeyEvent[] {
    const input = this.#pending.length > 0 ? _concat(this.#pending, bytes) : bytes;
    this.#pending = _EMPTY;
    return this.#parse(input, false);
  }

  /**
   * Reports whatever is pending as if no more input will follow: a lone ESC becomes an
   * `escape` event, ESC followed by a character an Alt key, an incomplete UTF-8 character
   * U+FFFD, and an incomplete escape sequence is dropped. A paste in progress is left alone.
   *
   * @returns The events for the pending bytes.
   */
  flush(): KeyEvent[] {
    if (this.#pasting || this.#pending.length === 0) return [];
    const input = this.#pending;
    this.#pending = _EMPTY;
    return this.#parse(input, true);
  }

  #parse(input: Uint8Array, final: boolean): KeyEvent[] {
    const events: KeyEvent[] = [];
    let i = 0;
    while (i < input.length) {
      if (this.#pasting) {
        i = this.#readPaste(input, i, events);
        continue;
      }
      const next = this.#readKey(input, i, events, final);
      if (next === _INCOMPLETE) {
        this.#pending = input.slice(i);
        break;
      }
      i = next;
    }
    return events;
  }

  /** Reads one key (or a run of text) at `i`, returning where the next one starts. */
  #readKey(input: Uint8Array, i: number, events: KeyEvent[], final: boolean): number {
    const byte = input[i];
    if (byte === undefined) return input.length;
    const afterCarriageReturn = this.#afterCarriageReturn;
    this.#afterCarriageReturn = false;
    if (_isText(byte)) return this.#readText(input, i, events, final);
    switch (byte) {
      case 0x0d:
        this.#afterCarriageReturn = true;
        events.push({ type: "enter" });
        return i + 1;
      case 0x0a:
        if (!afterCarriageReturn) events.push({ type: "enter" });
        return i + 1;
      case 0x09:
        events.push({ type: "tab" });
        return i + 1;
      case 0x08:
      case 0x7f:
        events.push({ type: "backspace" });
        return i + 1;
      case _ESC:
        return this.#readEscape(input, i, events, final);
      case 0x00:
        events.push({ type: "ctrl", key: "@" });
        return i + 1;
      default:
        events.push({
          type: "ctrl",
          key: String.fromCharCode(byte < 0x1b ? byte + 0x60 : byte + 0x40),
        });
        return i + 1;
    }
  }

  #readText(input: Uint8Array, i: number, events: KeyEvent[], final: boolean): number {
    let end = i;
    while (_isText(input[end])) end++;
    if (end === input.length && !final) {
      end = _completeEnd(input, i, end);
      if (end === i) return _INCOMPLETE;
    }
    const text = _decoder.decode(input.subarray(i, end));
    const last = events.at(-1);
    if (last?.type === "text") last.text += text;
    else events.push({ type: "text", text });
    return end;
  }

  #readEscape(input: Uint8Array, i: number, events: KeyEvent[], final: boolean): number {
    const next = input[i + 1];
    if (next === undefined) {
      if (!final) return _INCOMPLETE;
      events.push({ type: "escape" });
      return i + 1;
    }
    if (next === 0x5b) return this.#readCsi(input, i, events, final);
    if (next === 0x4f) return this.#readSs3(input, i, events, final);
    if (next < 0x20 || next === 0x7f) {
      // ESC before a control or another escape sequence: the same key with Alt.
      const inner: KeyEvent[] = [];
      const end = this.#readKey(input, i + 1, inner, final);
      if (end === _INCOMPLETE) return _INCOMPLETE;
      for (const event of inner) events.push(_withAlt(event));
      return end;
    }
    const size = _utf8Length(next);
    if (i + 1 + size > input.length && !final) return _INCOMPLETE;
    events.push({ type: "alt", key: _decoder.decode(input.subarray(i + 1, i + 1 + size)) });
    return Math.min(i + 1 + size, input.length);
  }

  /** Reads `ESC [ params intermediates final`. */
  #readCsi(input: Uint8Array, i: number, events: KeyEvent[], final: boolean): number {
    let j = i + 2;
    if (j >= input.length) {
      if (!final) return _INCOMPLETE;
      events.push({ type: "alt", key: "[" });
      return j;
    }
    if (input[j] === 0x5b) {
      // Linux console function keys: ESC [ [ A to ESC [ [ E.
      if (j + 1 >= input.length) return final ? input.length : _INCOMPLETE;
      return j + 2;
    }
    const paramsStart = j;
    while (_between(input[j], 0x30, 0x3f)) j++;
    const paramsEnd = j;
    while (_between(input[j], 0x20, 0x2f)) j++;
    const last = input[j];
    if (last === undefined) {
      return final || j - i > _MAX_SEQUENCE ? input.length : _INCOMPLETE;
    }
    if (last < 0x40 || last > 0x7e) return j; // Malformed: drop it, read on from here.
    if (last === 0x4d && paramsEnd === paramsStart && j === paramsEnd) {
      // X10 mouse report: ESC [ M and three bytes.
      if (j + 4 > input.length) return final ? input.length : _INCOMPLETE;
      return j + 4;
    }
    if (j === paramsEnd) {
      const params = String.fromCharCode(...input.subarray(paramsStart, paramsEnd));
      const event = this.#csiEvent(params, String.fromCharCode(last));
      if (event !== undefined) events.push(event);
    }
    return j + 1;
  }

  #csiEvent(params: string, last: string): KeyEvent | undefined {
    if (!/^[\d;]*$/.test(params)) return undefined;
    const [code = 1, modifier = 1] = params.split(";").map((part) =>
      part === "" ? 1 : Number(part)
    );
    const letter = _LETTER_KEYS[last];
    if (letter !== undefined) return _withModifiers(letter, modifier);
    switch (last) {
      case "Z":
        return _withModifiers("tab", modifier > 1 ? modifier : 2);
      case "a":
      case "b":
      case "c":
      case "d": { // rxvt Shift-arrows
        const arrow = _LETTER_KEYS[last.toUpperCase()];
        return arrow === undefined ? undefined : _withModifiers(arrow, 2);
      }
      case "~":
      case "$": // rxvt Shift-
      case "^": // rxvt Ctrl-
      case "@": // rxvt Ctrl-Shift-
      {
        if (code === 200 && last === "~") {
          this.#pasting = true;
          this.#paste = [];
          this.#pasteBytes = 0;
          return undefined;
        }
        const key = _TILDE_KEYS[code];
        if (key === undefined) return undefined;
        if (last === "~") return _withModifiers(key, modifier);
        return _withModifiers(key, last === "$" ? 2 : last === "^" ? 5 : 6);
      }
      default:
        return undefined;
    }
  }

  /** Reads `ESC O final`, with an optional modifier before the final byte. */
  #readSs3(input: Uint8Array, i: number, events: KeyEvent[], final: boolean): number {
    let j = i + 2;
    if (j >= input.length) {
      if (!final) return _INCOMPLETE;
      events.push({ type: "alt", key: "O" });
      return j;
    }
    const modifierStart = j;
    while (_between(input[j], 0x30, 0x39)) j++;
    const last = input[j];
    if (last === undefined) {
      return final || j - i > _MAX_SEQUENCE ? input.length : _INCOMPLETE;
    }
    if (last < 0x40 || last > 0x7e) return j;
    const modifier = j > modifierStart
      ? Number(String.fromCharCode(...input.subarray(modifierStart, j)))
      : 1;
    const name = String.fromCharCode(last);
    const letter = _LETTER_KEYS[name];
    // rxvt Ctrl-arrows: a to d.
    const arrow = name >= "a" && name <= "d" ? _LETTER_KEYS[name.toUpperCase()] : undefined;
    if (letter !== undefined) {
      events.push(_withModifiers(letter, modifier));
    } else if (arrow !== undefined) {
      events.push(_withModifiers(arrow, 5));
    } else if (name === "M") {
      events.push({ type: "enter" });
    } else if (_KEYPAD[name] !== undefined) {
      const text = _KEYPAD[name];
      const previous = events.at(-1);
      if (previous?.type === "text") previous.text += text;
      else events.push({ type: "text", text });
    }
    return j + 1;
  }

  /** Collects paste content from `i` up to the closing sequence or the end of the input. */
  #readPaste(input: Uint8Array, i: number, events: KeyEvent[]): number {
    const end = _indexOfTerminator(input, i);
    if (end === -1) {
      const kept = _terminatorPrefix(input, i, input.length);
      this.#keepPaste(input.subarray(i, input.length - kept));
      if (kept > 0) this.#pending = input.slice(input.length - kept);
      return input.length;
    }
    this.#keepPaste(input.subarray(i, end));
    const bytes = _concatAll(this.#paste);
    const complete = this.#pasteBytes >= this.#maxPasteBytes
      ? bytes.subarray(0, _completeEnd(bytes, 0, bytes.length))
      : bytes;
    events.push({ type: "paste", text: _decoder.decode(complete).replace(/\r\n?/g, "\n") });
    this.#pasting = false;
    this.#paste = [];
    this.#pasteBytes = 0;
    return end + _PASTE_END.length;
  }

  #keepPaste(bytes: Uint8Array): void {
    const room = this.#maxPasteBytes - this.#pasteBytes;
    if (room <= 0 || bytes.length === 0) return;
    const kept = bytes.length > room ? bytes.slice(0, room) : bytes.slice();
    this.#paste.push(kept);
    this.#pasteBytes += kept.length;
  }
}

function _concatAll(parts: Uint8Array[]): Uint8Array {
  const [only] = parts;
  if (only !== undefined && parts.length === 1) return only;
  let size = 0;
  for (const part of parts) size += part.length;
  const result = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    result.set(part, offset);
    offset += part.length;
  }
  return result;
}
