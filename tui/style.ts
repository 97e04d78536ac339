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

/** Name colours: green is kept for your own name. */
const NAME_COLOURS = [
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
] as const;

/**
 * A stable index for a name: the same name always gets the same colour.
 *
 * @param name The name.
 * @param buckets How many colours there are.
 * @returns A number from 0 to `buckets - 1`.
 */
export function nameHash(name: string, buckets: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % buckets;
}

/**
 * Makes the set of styles.
 *
 * @param enabled Whether to colour at all.
 * @returns The styles.
 */
export function createStyle(enabled: boolean): Style {
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
    name: (name: string) =>
      enabled
        ? styleText(NAME_COLOURS[nameHash(name, NAME_COLOURS.length)] ?? "cyan", name, {
          validateStream: false,
        })
        : name,
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
