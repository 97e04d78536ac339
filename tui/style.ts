/**
 * Colours and text styles for the terminal client, switched off as a whole
 * when colour is not wanted (`NO_COLOR`, `--no-color`, output not a terminal).
 *
 * @module
 */

import { styleText } from "node:util";

type Format = Parameters<typeof styleText>[0];

/** The styles the client uses. Each returns its text unchanged when colour is off. */
export interface Style {
  /** Whether colours are on. */
  readonly enabled: boolean;
  /** Joins, leaves, renames, times. */
  dim(text: string): string;
  /** Emphasis. */
  bold(text: string): string;
  /** `/me` actions. */
  italic(text: string): string;
  /** The status bar and control-character placeholders. */
  inverse(text: string): string;
  /** Private messages. */
  private(text: string): string;
  /** Lines that mention you. */
  mention(text: string): string;
  /** Errors. */
  error(text: string): string;
  /** Notices from the client itself. */
  info(text: string): string;
  /** Your own name. */
  self(text: string): string;
  /** Another person's name, in a colour that is the same every time for that name. */
  name(name: string): string;
}

/**
 * Name colours on a 16-colour terminal: ten hues, plain and bold, so twenty
 * styles. Green is kept for your own name.
 */
const NAME_COLOURS: readonly Format[] = [
  "cyan",
  "magenta",
  "yellow",
  "blue",
  "red",
  "cyanBright",
  "magentaBright",
  "yellowBright",
  "blueBright",
  "redBright",
].flatMap((colour) => [colour as Format, [colour, "bold"] as Format]);

/**
 * Name colours on a 256-colour terminal: hues of the 6×6×6 cube that read
 * well on dark and light backgrounds alike (no near-black, near-white or
 * pure greens, which are kept for your own name).
 */
export const NAME_COLOURS_256: readonly number[] = [
  33,
  38,
  39,
  44,
  45,
  51,
  63,
  69,
  75,
  81,
  87,
  93,
  99,
  105,
  111,
  117,
  129,
  135,
  141,
  147,
  153,
  160,
  161,
  162,
  163,
  164,
  165,
  166,
  167,
  168,
  169,
  170,
  171,
  172,
  173,
  174,
  175,
  176,
  177,
  178,
  179,
  180,
  181,
  182,
  183,
  196,
  197,
  198,
  199,
  200,
  201,
  202,
  203,
  204,
  205,
  206,
  207,
  208,
  209,
  210,
  211,
  212,
  213,
  214,
  215,
  216,
  217,
  218,
  219,
  220,
  221,
  222,
  223,
  224,
  225,
  226,
  227,
];

/**
 * A stable index for a name: the same name always gets the same colour,
 * whatever its letter case. FNV-1a over the name's UTF-8 bytes, finished
 * with a mixing step so names that differ in one byte spread out.
 *
 * @param name The name.
 * @param buckets How many colours there are.
 * @returns A number from 0 to `buckets - 1`.
 */
export function nameHash(name: string, buckets: number): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(name.normalize("NFC").toLowerCase())) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return (hash >>> 0) % buckets;
}

/** Options for {@linkcode createStyle}. */
export interface StyleOptions {
  /**
   * How many colours the terminal shows: 256 gives names a palette of
   * {@linkcode NAME_COLOURS_256}, 16 one of twenty styles.
   *
   * @default {16}
   */
  colors?: 16 | 256;
}

/**
 * Makes the set of styles.
 *
 * @param enabled Whether to colour at all.
 * @param options How many colours the terminal shows.
 * @returns The styles.
 */
export function createStyle(enabled: boolean, options: StyleOptions = {}): Style {
  const paint = (format: Format) => (text: string) =>
    enabled && text !== "" ? styleText(format, text, { validateStream: false }) : text;
  return {
    enabled,
    dim: paint("dim"),
    bold: paint("bold"),
    italic: paint("italic"),
    inverse: paint("inverse"),
    private: paint(["magentaBright", "bold"]),
    mention: paint(["yellowBright", "bold"]),
    error: paint(["redBright", "bold"]),
    info: paint("cyan"),
    self: paint(["greenBright", "bold"]),
    name: (name: string) => {
      if (!enabled || name === "") return name;
      if (options.colors === 256) {
        return `\x1b[38;5;${
          NAME_COLOURS_256[nameHash(name, NAME_COLOURS_256.length)]
        }m${name}\x1b[39m`;
      }
      return styleText(NAME_COLOURS[nameHash(name, NAME_COLOURS.length)] ?? "cyan", name, {
        validateStream: false,
      });
    },
  };
}

/**
 * Decides whether to use colour: not when `--no-color` was given, not when
 * `NO_COLOR` is set to anything, not when `TERM=dumb`, and only on a terminal
 * unless `FORCE_COLOR` is set.
 *
 * @param output The stream written to.
 * @param noColorFlag Whether `--no-color` was given.
 * @returns Whether to colour.
 */
export function wantsColor(output: { isTerminal(): boolean }, noColorFlag: boolean): boolean {
  if (noColorFlag) return false;
  const env = (key: string) => {
    try {
      return Deno.env.get(key);
    } catch {
      return undefined;
    }
  };
  const noColor = env("NO_COLOR");
  if (noColor !== undefined && noColor !== "") return false;
  const force = env("FORCE_COLOR");
  if (force !== undefined && force !== "" && force !== "0") return true;
  if (env("TERM") === "dumb") return false;
  return output.isTerminal();
}

/**
 * Tells how many colours the terminal shows: 256 when `COLORTERM` says
 * `truecolor` or `24bit`, or `TERM` names a 256-colour terminal; else 16.
 *
 * @returns 256 or 16.
 */
export function colorDepth(): 16 | 256 {
  const env = (key: string) => {
    try {
      return Deno.env.get(key) ?? "";
    } catch {
      return "";
    }
  };
  if (/^(truecolor|24bit)$/i.test(env("COLORTERM"))) return 256;
  return /256col|direct/i.test(env("TERM")) ? 256 : 16;
}
