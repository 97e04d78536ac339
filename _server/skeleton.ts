/**
 * Names that look alike: the confusable skeleton of Unicode Technical
 * Standard #39 (section 4), with the mapping of Unicode's `confusables.txt`
 * as the `unhomoglyph` package ships it.
 *
 * @module
 */

import { confusables } from "./_deps_unhomoglyph.ts";

const MAP: Readonly<Record<string, string>> = confusables;

/**
 * The TR39 skeleton of a text: NFD, each code point replaced by its
 * prototype from `confusables.txt`, then NFD again. Two texts are confusable
 * when their skeletons are equal.
 *
 * @param text The text.
 * @returns Its skeleton (not meant to be shown).
 */
export function skeleton(text: string): string {
  let mapped = "";
  for (const char of text.normalize("NFD")) mapped += MAP[char] ?? char;
  return mapped.normalize("NFD");
}

/**
 * The key under which names that look alike collide. Names are unique
 * regardless of case (`nameKey`), so look-alikes are too: the skeleton of the
 * NFKC form, lower-cased, and the skeleton of that again (lower case can
 * bring up letters with a prototype of their own).
 *
 * @param name A name already checked with `checkName`.
 * @returns The comparison key.
 */
export function confusableKey(name: string): string {
  return skeleton(skeleton(name.normalize("NFKC")).toLowerCase());
}
