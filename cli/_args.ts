/**
 * Command-line arguments before `parseArgs` sees them.
 *
 * @module
 */

/**
 * Joins `--option -5` into `--option=-5`, so a negative number reaches the
 * option's own check ("use a whole number, 0 or more") instead of being
 * taken for an option and reported as a missing value.
 *
 * @param args The arguments.
 * @returns The arguments, negative numbers joined to the option before them.
 */
export function joinNegativeValues(args: readonly string[]): string[] {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      joined.push(...args.slice(i));
      break;
    }
    const next = args[i + 1];
    if (/^--[^=]+$/.test(arg) && next !== undefined && /^-\d/.test(next)) {
      joined.push(`${arg}=${next}`);
      i++;
    } else {
      joined.push(arg);
    }
  }
  return joined;
}
