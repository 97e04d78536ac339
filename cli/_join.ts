/**
 * Joining a server from the command line: the options `chat connect` and
 * `chat send` share, and the errors they turn into one line.
 *
 * @module
 */

import { type ChatClient, connect, type ConnectOptions, type ReconnectOptions } from "../client.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { type Identity, loadIdentity } from "../_common/identity.ts";
import { parseAddress } from "./_address.ts";
import { CliError, EXIT_USAGE } from "./_errors.ts";

/** The options `chat connect` and `chat send` share. */
export const JOIN_OPTIONS = {
  name: { type: "string", short: "n" },
  tls: { type: "boolean" },
  ca: { type: "string" },
  fingerprint: { type: "string" },
  password: { type: "string" },
  identity: { type: "string" },
  "no-key": { type: "boolean" },
} as const;

/** Their help lines. */
export const JOIN_HELP = `  -n, --name NAME         the name to use (default: your user name)
  --tls                   connect over TLS, trusting the system's authorities
  --ca FILE               connect over TLS, trusting this certificate (PEM)
  --fingerprint SHA256:…  connect over TLS, trusting exactly the certificate with this
                          fingerprint, full or short (XXXX-XXXX-…, as "chat serve --tls"
                          prints it)
  --password PASSWORD     the server's password (better: set CHAT_PASSWORD)
  --identity FILE         your key (default: identity.pem in the config folder, made on
                          first use); it proves your name is yours
  --no-key                join without a key (you can only use names nobody has claimed)`;

/** What {@linkcode join} reads from the command line. */
export interface JoinFlags {
  name?: string;
  tls?: boolean;
  ca?: string;
  fingerprint?: string;
  password?: string;
  identity?: string;
  "no-key"?: boolean;
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/** The user's login name, the default for `--name`. */
export function defaultName(): string | undefined {
  try {
    return Deno.env.get("USER") ?? Deno.env.get("USERNAME");
  } catch {
    return undefined;
  }
}

/**
 * Joins, turning the "name taken" and "invalid name" refusals into one-line
 * CLI errors that say what to do.
 *
 * @param address `HOST[:PORT]` from the command line, or several separated by commas.
 * @param flags The name, TLS, key and password options.
 * @param reconnect Whether and how the client reconnects.
 * @param timeout How long to wait for the connection and the welcome, in ms.
 * @param transient Ask the server not to announce the joins and leaves (`chat send`).
 * @returns The client.
 */
export async function join(
  address: string,
  flags: JoinFlags,
  reconnect: boolean | ReconnectOptions = false,
  timeout?: number,
  transient = false,
): Promise<ChatClient> {
  // Several addresses, separated by commas, are the nodes of one chat.
  const [first, ...servers] = address.split(",").map((part) => parseAddress(part));
  const { hostname, port } = first!;
  const name = flags.name ?? defaultName();
  if (name === undefined) {
    throw new CliError('Missing --name: choose a name with "--name NAME"', EXIT_USAGE);
  }
  let tls: ConnectOptions["tls"] = flags.tls || flags.ca !== undefined ||
    flags.fingerprint !== undefined;
  if (flags.ca !== undefined) {
    try {
      tls = { caCerts: [await Deno.readTextFile(flags.ca)] };
    } catch (error) {
      throw new CliError(
        `Cannot read "${flags.ca}": ${error instanceof Error ? error.message : error}`,
      );
    }
  }
  if (flags.fingerprint !== undefined) tls = { fingerprint: flags.fingerprint };
  let identity: Identity | undefined;
  if (!flags["no-key"]) {
    // Only the default key is made on first use; a key named on the command line must exist.
    if (flags.identity !== undefined) {
      try {
        await Deno.stat(flags.identity);
      } catch {
        throw new CliError(`Cannot read the key "${flags.identity}": no such file`);
      }
    }
    try {
      identity = await loadIdentity(flags.identity);
    } catch (error) {
      throw new CliError(error instanceof Error ? error.message : String(error));
    }
  }
  const password = flags.password ?? env("CHAT_PASSWORD");
  try {
    return await connect({
      hostname,
      port,
      servers,
      name,
      reconnect,
      tls,
      identity,
      password,
      timeout,
      transient,
    });
  } catch (error) {
    if (
      error instanceof ProtocolError &&
      (error.code === "name_taken" || error.code === "invalid_name")
    ) {
      throw new CliError(`${error.message}; choose another with --name`);
    }
    // Its message already says to choose another name.
    if (error instanceof ProtocolError && error.code === "name_claimed") {
      throw new CliError(error.message);
    }
    if (error instanceof TypeError) throw new CliError(error.message, EXIT_USAGE);
    throw error;
  }
}
