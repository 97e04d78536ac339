/**
 * Carries out a typed command with the client library. Shared by the line
 * client and the full-screen client, which differ only in how they show the
 * results.
 *
 * @module
 */

import type { ChatClient, SentDm, SentMessage } from "../client.ts";
import { type Command, helpLines } from "../protocol/commands.ts";
import { sanitize } from "../protocol/sanitize.ts";

/** Where the results of commands go. */
export interface CommandOutput {
  /** A notice (`***`). */
  info(text: string): void;
  /** A failure (`!`). Sets the exit code to 1 for requests that failed. */
  error(text: string, requestFailed: boolean): void;
  /** A room message the server accepted. */
  sent(message: SentMessage): void;
  /** A private message the server delivered. */
  sentDm(message: SentDm): void;
  /** `/clear`. */
  clear(): void;
}

/**
 * Runs one command. Requests run in the background; their promises are given
 * to `track` so the caller can wait for them before leaving.
 *
 * @param client The connected client.
 * @param command The parsed command.
 * @param output Where results go.
 * @param track Receives each request in flight.
 * @returns `"quit"` when the user asked to leave.
 */
export function runCommand(
  client: ChatClient,
  command: Command,
  output: CommandOutput,
  track: (request: Promise<unknown>) => void,
): "quit" | undefined {
  const fail = (what: string) => (error: unknown) => {
    output.error(
      `${what}: ${error instanceof Error ? sanitize(error.message) : String(error)}`,
      true,
    );
  };
  switch (command.kind) {
    case "say":
      track(client.send(command.text).then((sent) => output.sent(sent), fail("Not sent")));
      return;
    case "me":
      track(
        client.send(command.text, { action: true }).then(
          (sent) => output.sent(sent),
          fail("Not sent"),
        ),
      );
      return;
    case "msg":
      track(
        client.dm(command.to, command.text).then((sent) => output.sentDm(sent), fail("Not sent")),
      );
      return;
    case "nick":
      track(
        client.nick(command.name).then(
          (name) => output.info(`You are now known as ${sanitize(name)}`),
          fail("Cannot rename"),
        ),
      );
      return;
    case "who":
      track(
        client.who().then(
          (names) =>
            output.info(`In ${client.room}: ${names.map((name) => sanitize(name)).join(", ")}`),
          fail("Cannot list the room"),
        ),
      );
      return;
    case "help":
      for (const line of helpLines()) output.info(line);
      return;
    case "clear":
      output.clear();
      return;
    case "usage":
      output.error(command.message, false);
      return;
    case "unknown":
      output.error(`Unknown command "/${sanitize(command.name)}"; type /help for the list`, false);
      return;
    case "quit":
      return "quit";
  }
}
