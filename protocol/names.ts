/**
 * Rules for user names and room names.
 *
 * @module
 */

import { MAX_NAME_LENGTH, MAX_ROOM_LENGTH } from "./limits.ts";

const NAME = /^[\p{L}\p{N}][\p{L}\p{M}\p{N}_.\-]*$/u;
const ROOM = /^#[\p{L}\p{M}\p{N}_.\-]+$/u;
/** Characters that render as nothing: variation selectors, tags, fillers and the like. */
const INVISIBLE = /\p{Default_Ignorable_Code_Point}/u;

/**
 * Checks a user name and returns it in normal form (NFC), or says why it is
 * not allowed. Names start with a letter or digit, then letters, marks,
 * digits, `_`, `.` or `-`, at most 32 characters: so Unicode names such as
 * `小明` or `José` work, and spaces, controls and invisible characters (every
 * default-ignorable code point, such as variation selectors) do not.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { checkName } from "./names.ts";
 *
 * deepEqual(checkName("小明"), { ok: true, name: "小明" });
 * deepEqual(checkName("a b").ok, false);
 * deepEqual(checkName("小明\uFE00").ok, false);
 * ```
 *
 * @param name The name asked for.
 * @returns The normalised name, or the reason it was refused.
 */
export function checkName(
  name: string,
): { ok: true; name: string } | { ok: false; message: string } {
  const normal = name.normalize("NFC");
  const length = [...normal].length;
  if (length === 0) return { ok: false, message: "Name is empty" };
  if (length > MAX_NAME_LENGTH) {
    return { ok: false, message: `Name is longer than ${MAX_NAME_LENGTH} characters` };
  }
  const invisible = INVISIBLE.exec(normal);
  if (invisible !== null) {
    const code = invisible[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
    return {
      ok: false,
      message: `Name ${
        JSON.stringify(normal)
      } is not allowed: it contains an invisible character (U+${code})`,
    };
  }
  if (!NAME.test(normal)) {
    return {
      ok: false,
      message: `Name ${
        JSON.stringify(normal)
      } is not allowed: use letters, digits, "_", "." or "-", starting with a letter or digit`,
    };
  }
  return { ok: true, name: normal };
}

/**
 * The key under which a name is unique: names that differ only in case (or
 * in Unicode compatibility forms) are the same name.
 *
 * @param name A name already checked with {@linkcode checkName}.
 * @returns The comparison key.
 */
export function nameKey(name: string): string {
  return name.normalize("NFKC").toLowerCase();
}

/**
 * Checks a room name: `#` followed by 1 to 49 letters, marks, digits, `_`,
 * `.` or `-`.
 *
 * @param room The room name.
 * @returns Whether the name is allowed.
 */
export function isRoomName(room: string): boolean {
  return [...room].length <= MAX_ROOM_LENGTH && ROOM.test(room);
}
