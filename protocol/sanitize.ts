/**
 * Make text that came from the network safe to print on a terminal.
 *
 * Control characters, escape sequences, bidirectional overrides and invisible formatting
 * characters are replaced by visible placeholders, so a peer can neither drive the terminal
 * (colours, clear screen, window title, hyperlinks, cursor moves) nor hide or reorder text
 * (Trojan-source bidi tricks, zero-width characters in names). Ordinary text in any script,
 * emoji sequences and combining marks pass through untouched.
 *
 * @module
 */

/** Options for {@linkcode sanitize} and {@linkcode isSafe}. */
export interface SanitizeOptions {
  /**
   * Keep line feeds (`"\n"`) as line breaks; a `"\r\n"` pair becomes a single `"\n"`. When
   * `false`, a line feed is shown as `^J`.
   *
   * @default {false}
   */
  newlines?: boolean;
  /**
   * Number of spaces that replace each tab. With `0`, a tab is shown as `^I` like any other
   * control character.
   *
   * @default {4}
   */
  tabWidth?: number;
}

/** Scripts in which zero-width joiners and non-joiners are part of ordinary spelling. */
const _JOINING =
  "[\\p{sc=Arab}\\p{sc=Syrc}\\p{sc=Nkoo}\\p{sc=Mong}\\p{sc=Deva}\\p{sc=Beng}\\p{sc=Guru}" +
  "\\p{sc=Gujr}\\p{sc=Orya}\\p{sc=Taml}\\p{sc=Telu}\\p{sc=Knda}\\p{sc=Mlym}\\p{sc=Sinh}" +
  "\\p{sc=Mymr}\\p{sc=Khmr}]";

/** Variation selectors other than the emoji and text presentation selectors. */
const _SELECTORS = "[\\uFE00-\\uFE0D\\u180B-\\u180F\\u{E0100}-\\u{E01EF}]";

/** What a variation selector other than the emoji ones may follow. */
const _SELECTOR_BASE = "[[\\p{L}\\p{N}\\p{M}\\p{S}\\p{P}]--\\p{ASCII}]";

/** What may stand before a zero-width joiner inside an emoji sequence. */
const _EMOJI_BEFORE_ZWJ = "\\p{Extended_Pictographic}[\\p{Emoji_Modifier}\\uFE0F]?";

/**
 * Characters that are always replaced: controls, format characters, line and paragraph
 * separators and default-ignorable code points, except the ones whose fate depends on their
 * neighbours (handled by the alternatives below) and the visible prepended concatenation marks.
 */
const _ALWAYS = "\\p{Cc}\\p{Cf}\\p{Zl}\\p{Zp}\\p{Default_Ignorable_Code_Point}";
const _EXCEPT = "\\u200C\\u200D\\uFE00-\\uFE0F\\u180B-\\u180F\\u{E0020}-\\u{E007F}" +
  "\\u{E0100}-\\u{E01EF}\\u0600-\\u0605\\u06DD\\u070F\\u0890\\u0891\\u08E2\\u{110BD}\\u{110CD}";

function _pattern(newlines: boolean): RegExp {
  const always = `[[${_ALWAYS}]--[${_EXCEPT}${newlines ? "\\n" : ""}]]`;
  const alternatives = [
    // A complete emoji tag sequence (subdivision flags such as England): captured and kept.
    "(\\u{1F3F4}[\\u{E0020}-\\u{E007E}]{1,32}\\u{E007F})",
    always,
    // Zero-width non-joiner, kept only between letters of a joining script.
    `\\u200C(?!(?<=${_JOINING}\\u200C)${_JOINING})`,
    // Zero-width joiner, kept inside an emoji sequence or between letters of a joining script.
    `\\u200D(?!(?<=${_EMOJI_BEFORE_ZWJ}\\u200D)\\p{Extended_Pictographic})` +
    `(?!(?<=${_JOINING}\\u200D)${_JOINING})`,
    // Emoji and text presentation selectors, kept after a character that can be an emoji.
    "[\\uFE0E\\uFE0F](?<![\\p{Emoji}\\p{Extended_Pictographic}].)",
    // Other variation selectors, kept after a non-ASCII letter, digit, mark or symbol.
    `${_SELECTORS}(?<!${_SELECTOR_BASE}.)`,
    // Tag characters outside a complete emoji tag sequence.
    "[\\u{E0020}-\\u{E007F}]",
    // Lone surrogates (a well-formed pair is one code point in this mode and never matches).
    "[\\uD800-\\uDFFF]",
  ];
  if (newlines) alternatives.unshift("\\r\\n");
  return new RegExp(alternatives.join("|"), "gv");
}

const _UNSAFE = _pattern(false);
const _UNSAFE_KEEP_NEWLINES = _pattern(true);

function _placeholder(match: string, tabWidth: number): string {
  const code = match.codePointAt(0)!;
  if (code === 0x09 && tabWidth > 0) return " ".repeat(tabWidth);
  if (code < 0x20) return "^" + String.fromCharCode(code + 0x40);
  if (code === 0x7f) return "^?";
  if (code >= 0xd800 && code <= 0xdfff) return "\uFFFD";
  return `<U+${code.toString(16).toUpperCase().padStart(4, "0")}>`;
}

/**
 * Replaces everything in `text` that could control a terminal or hide, reorder or disguise
 * text with a visible placeholder.
 *
 * - C0 controls use caret notation: ESC becomes `^[`, BEL `^G`, NUL `^@`, DEL `^?`. So
 *   `"\x1b[2J"` prints as the harmless text `^[[2J`.
 * - Tabs become spaces (see {@linkcode SanitizeOptions.tabWidth}); line feeds are kept or shown
 *   as `^J` (see {@linkcode SanitizeOptions.newlines}).
 * - C1 controls, bidirectional overrides, isolates and marks, zero-width and other invisible
 *   formatting characters, line and paragraph separators, the byte order mark, soft hyphens,
 *   Hangul fillers and stray tag characters become `<U+XXXX>`, for example `<U+202E>`.
 * - Lone surrogates become U+FFFD.
 *
 * Zero-width joiners and variation selectors inside emoji sequences (`👨‍👩‍👧`, `❤️`),
 * emoji tag sequences (subdivision flags), joiners between letters of scripts that need them
 * (Arabic, Persian, Indic scripts) and variation selectors after non-ASCII letters are kept.
 * Text without anything to replace is returned as is, without copying.
 *
 * @param text The untrusted text.
 * @param options Line feed and tab handling.
 * @returns The text with every unsafe character replaced.
 *
 * @example Neutralise an escape sequence
 * ```ts
 * import assert from "node:assert/strict";
 * import { sanitize } from "./sanitize.ts";
 *
 * assert.equal(sanitize("\x1b]0;pwned\x07hi"), "^[]0;pwned^Ghi");
 * assert.equal(sanitize("abc\u202Edef"), "abc<U+202E>def");
 * assert.equal(sanitize("你好 👨‍👩‍👧"), "你好 👨‍👩‍👧");
 * ```
 *
 * @example Keep line breaks
 * ```ts
 * import assert from "node:assert/strict";
 * import { sanitize } from "./sanitize.ts";
 *
 * assert.equal(sanitize("one\r\ntwo\n", { newlines: true }), "one\ntwo\n");
 * assert.equal(sanitize("one\ntwo"), "one^Jtwo");
 * ```
 */
export function sanitize(text: string, options?: SanitizeOptions): string {
  const pattern = options?.newlines ? _UNSAFE_KEEP_NEWLINES : _UNSAFE;
  const tabWidth = options?.tabWidth ?? 4;
  pattern.lastIndex = 0;
  let match = pattern.exec(text);
  if (match === null) return text;
  let result = "";
  let last = 0;
  let changed = false;
  do {
    const found = match[0];
    let replacement: string;
    if (match[1] !== undefined) replacement = found;
    else if (found === "\r\n") replacement = "\n";
    else replacement = _placeholder(found, tabWidth);
    if (replacement !== found) changed = true;
    result += text.slice(last, match.index) + replacement;
    last = match.index + found.length;
    match = pattern.exec(text);
  } while (match !== null);
  return changed ? result + text.slice(last) : text;
}

/**
 * Tells whether {@linkcode sanitize} would return `text` unchanged, that is whether it can be
 * printed on a terminal as it is.
 *
 * @param text The text to check.
 * @param options The same options that would be given to {@linkcode sanitize}.
 * @returns `true` when the text contains nothing to replace.
 *
 * @example Check a name
 * ```ts
 * import assert from "node:assert/strict";
 * import { isSafe } from "./sanitize.ts";
 *
 * assert.equal(isSafe("alice"), true);
 * assert.equal(isSafe("ali\u200Bce"), false);
 * ```
 */
export function isSafe(text: string, options?: SanitizeOptions): boolean {
  return sanitize(text, options) === text;
}
