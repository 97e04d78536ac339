/**
 * IP addresses and prefixes for address bans (`ip:203.0.113.0/24`).
 *
 * @module
 */

/** An address or a network: family, the address as a number, and the prefix length. */
export interface AddressRange {
  /** 4 or 6. */
  family: 4 | 6;
  /** The address bits. */
  bits: bigint;
  /** How many leading bits must match: 32 or 128 for one address. */
  prefix: number;
}

const IPV4 = /^(?:0|[1-9]\d{0,2})(?:\.(?:0|[1-9]\d{0,2})){3}$/;

function parseIpv4(text: string): bigint | undefined {
  if (!IPV4.test(text)) return undefined;
  let bits = 0n;
  for (const part of text.split(".")) {
    const byte = Number(part);
    if (byte > 255) return undefined;
    bits = (bits << 8n) | BigInt(byte);
  }
  return bits;
}

function parseIpv6(text: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(text) || !text.includes(":")) return undefined;
  let canonical: string;
  try {
    canonical = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
  const [head = "", tail] = canonical.split("::", 2);
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined
    ? left
    : [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  if (groups.length !== 8) return undefined;
  let bits = 0n;
  for (const group of groups) bits = (bits << 16n) | BigInt(parseInt(group, 16));
  return bits;
}

/**
 * Reads an address as a connection reports it: IPv4-mapped IPv6 addresses
 * (`::ffff:192.0.2.1`) count as the IPv4 address.
 *
 * @param ip The address.
 * @returns It as a range of one, or `undefined` if it is not an address.
 */
export function parseAddress(ip: string): AddressRange | undefined {
  const v4 = parseIpv4(ip);
  if (v4 !== undefined) return { family: 4, bits: v4, prefix: 32 };
  const v6 = parseIpv6(ip);
  if (v6 === undefined) return undefined;
  if (v6 >> 32n === 0xffffn) return { family: 4, bits: v6 & 0xffffffffn, prefix: 32 };
  return { family: 6, bits: v6, prefix: 128 };
}

/**
 * Parses the value of an `ip:` ban: an IPv4 or IPv6 address, optionally
 * with a prefix length (`203.0.113.0/24`, `2001:db8::/32`).
 *
 * @param text What follows `ip:`.
 * @returns The canonical form (`203.0.113.0/24`, `2001:db8::/32`, or just
 * the address for one address), or a message saying what is wrong.
 */
export function parseAddressRange(
  text: string,
): { ok: true; value: string; range: AddressRange } | { ok: false; message: string } {
  const slash = text.indexOf("/");
  const address = slash === -1 ? text : text.slice(0, slash);
  const prefixText = slash === -1 ? undefined : text.slice(slash + 1);
  const v4 = parseIpv4(address);
  const v6 = v4 === undefined ? parseIpv6(address) : undefined;
  if (v4 === undefined && v6 === undefined) {
    return {
      ok: false,
      message:
        `"${text}" is not an IP address or prefix; write ip:203.0.113.7, ip:203.0.113.0/24 or ip:2001:db8::/32`,
    };
  }
  const family = v4 !== undefined ? 4 : 6;
  const width = family === 4 ? 32 : 128;
  const bits = (v4 ?? v6)!;
  let prefix = width;
  if (prefixText !== undefined) {
    if (!/^(?:0|[1-9]\d{0,2})$/.test(prefixText) || Number(prefixText) > width) {
      return {
        ok: false,
        message: `The prefix length in "${text}" must be a whole number from 0 to ${width}`,
      };
    }
    prefix = Number(prefixText);
  }
  const host = (1n << BigInt(width - prefix)) - 1n;
  if ((bits & host) !== 0n) {
    const network = format({ family, bits: bits & ~host, prefix });
    return {
      ok: false,
      message: `"${text}" has bits set after its prefix; did you mean "${network}"`,
    };
  }
  // An IPv4-mapped prefix means the IPv4 addresses: connections report those as IPv4.
  const range: AddressRange = family === 6 && prefix >= 96 && bits >> 32n === 0xffffn
    ? { family: 4, bits: bits & 0xffffffffn, prefix: prefix - 96 }
    : { family, bits, prefix };
  return { ok: true, value: format(range), range };
}

/**
 * Whether an address lies in a range.
 *
 * @param range The range.
 * @param address The address.
 * @returns Whether it matches.
 */
export function inRange(range: AddressRange, address: AddressRange): boolean {
  if (range.family !== address.family) return false;
  const shift = BigInt((range.family === 4 ? 32 : 128) - range.prefix);
  return address.bits >> shift === range.bits >> shift;
}

/**
 * The canonical text of a range: the address alone for one address.
 *
 * @param range The range.
 * @returns `203.0.113.0/24`, `2001:db8::1` and so on.
 */
export function format(range: AddressRange): string {
  let text: string;
  if (range.family === 4) {
    text = [24n, 16n, 8n, 0n].map((shift) => String((range.bits >> shift) & 0xffn)).join(".");
  } else {
    const groups: string[] = [];
    for (let shift = 112n; shift >= 0n; shift -= 16n) {
      groups.push(((range.bits >> shift) & 0xffffn).toString(16));
    }
    text = new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
  }
  const width = range.family === 4 ? 32 : 128;
  return range.prefix === width ? text : `${text}/${range.prefix}`;
}

/**
 * Whether a certificate's names cover a host, as TLS clients check it: a
 * name equal to the host (case aside), or a wildcard `*.` name for one label
 * in its place. An IP address matches only the same address.
 *
 * @param names The certificate's DNS and IP names, lower-cased.
 * @param host A host name or address, an IPv6 address with or without brackets.
 * @returns Whether one of the names covers it.
 */
export function namesCover(names: readonly string[], host: string): boolean {
  const bare = (host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host)
    .toLowerCase();
  const address = parseAddress(bare);
  if (address !== undefined) {
    return names.some((name) => {
      const other = parseAddress(name);
      return other !== undefined && other.family === address.family &&
        other.bits === address.bits;
    });
  }
  return bare !== "" && names.some((name) =>
    name === bare ||
    (name.startsWith("*.") && bare.endsWith(name.slice(1)) &&
      bare.length > name.length - 1 && !bare.slice(0, bare.length - name.length + 1).includes("."))
  );
}
