/**
 * The `chat` command: `chat serve`, `chat connect`.
 *
 * @module
 */

import denoConfig from "./deno.json" with { type: "json" };
import { EXIT_USAGE, explain } from "./cli/_errors.ts";

const HELP = `chat ${denoConfig.version}: a chat server and client in one

Usage:
  chat serve [--host HOST] [--port PORT]      start a server (port ${7777} by default)
  chat connect [HOST[:PORT]] --name NAME      join a server and talk
  chat send [HOST[:PORT]] --name NAME TEXT    send a message (or stdin lines) and leave
  chat --version                              print the version
  chat COMMAND --help                         help for a command

Anyone can also join with "nc HOST PORT" or telnet.`;

function version(): string {
  return `chat ${denoConfig.version} (deno ${Deno.version.deno}, ${Deno.build.target})`;
}

/**
 * Runs the command line and returns the exit code.
 *
 * @param args The arguments, without the program name.
 * @returns The exit code.
 */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    // Each command loads only what it needs: the server never loads the terminal UI.
    case "serve":
      return await (await import("./cli/serve_command.ts")).serveCommand(rest);
    case "connect":
      return await (await import("./cli/connect_command.ts")).connectCommand(rest);
    case "send":
      return await (await import("./cli/send_command.ts")).sendCommand(rest);
    case "-V":
    case "--version":
    case "version":
      console.log(version());
      return 0;
    case undefined:
      console.error(HELP);
      return EXIT_USAGE;
    case "-h":
    case "--help":
    case "help":
      console.log(HELP);
      return 0;
    default:
      console.error(
        command.startsWith("-")
          ? `chat: Unknown option "${command}"; see "chat --help"`
          : `chat: Unknown command "${command}"; see "chat --help"`,
      );
      return EXIT_USAGE;
  }
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (error) {
    const known = explain(error);
    if (known === undefined) throw error;
    const hint =
      known.exitCode === EXIT_USAGE && ["serve", "connect", "send"].includes(Deno.args[0]!)
        ? `; see "chat ${Deno.args[0]} --help"`
        : "";
    console.error(`chat: ${known.message}${hint}`);
    code = known.exitCode;
  }
  Deno.exit(code);
}
