/**
 * Reading `HOST[:PORT]` and port numbers from the command line.
 *
 * @module
 */

import { CliError, EXIT_USAGE } from "./_errors.ts";

/** The port `chat` uses when none is given. */
export const DEFAULT_PORT = 7777;

/**
 * Parses a port number.
 *
 * @param text The text given on the command line.
 * @param flag The option's name, for the error.
 * @returns The port.
 * @throws {CliError} When it is not a whole number from 0 to 65535.
 */
export function parsePort(text: string, flag = "--port"): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 0 && port <= 65535)) {
    throw new CliError(`Invalid ${flag} "${text}": use a number from 0 to 65535`, EXIT_USAGE);
  }
  return port;
}

/**
 * Parses `HOST`, `HOST:PORT`, `:PORT`, `[IPv6]:PORT` or a bare IPv6 address.
 *
 * @param text The address given on the command line.
 * @returns The host name and port.
 * @throws {CliError} When the port is not valid.
 */
export function parseAddress(text: string): { hostname: string; port: number } {
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (bracketed) {
    return {
      hostname: bracketed[1]!,
      port: bracketed[2] === undefined ? DEFAULT_PORT : parsePort(bracketed[2], "port"),
    };
  }
  const colons = text.split(":").length - 1;
  if (colons === 1) {
    const [host, port] = text.split(":");
    return { hostname: host || "127.0.0.1", port: parsePort(port!, "port") };
  }
  return { hostname: text || "127.0.0.1", port: DEFAULT_PORT };
}

/**
 * Formats an address for people: IPv6 in brackets.
 *
 * @param hostname The host.
 * @param port The port.
 * @returns `host:port`.
 */
export function formatAddress(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}
