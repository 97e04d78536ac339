/**
 * The error a command throws for an expected failure: printed as one line,
 * never as a stack trace.
 *
 * @module
 */

import { ProtocolError } from "../protocol/errors.ts";

/** Exit code for a bad command line. */
export const EXIT_USAGE = 2;
/** Exit code for every other expected failure. */
export const EXIT_FAILURE = 1;

/** An expected failure with the exit code it should end the program with. */
export class CliError extends Error {
  /** The process exit code. */
  readonly exitCode: number;

  /**
   * Creates the error.
   *
   * @param message One line: what happened and what to do.
   * @param exitCode The exit code.
   */
  constructor(message: string, exitCode: number = EXIT_FAILURE) {
    super(message);
    this.name = "CliError";
    this.exitCode = exitCode;
  }
}

/**
 * Turns a failure into the line to print and the exit code, or `undefined`
 * for a failure nobody expected (a bug: print its stack).
 *
 * @param error What was thrown.
 * @returns The message and exit code.
 */
export function explain(error: unknown): { message: string; exitCode: number } | undefined {
  if (error instanceof CliError) return { message: error.message, exitCode: error.exitCode };
  // A StorageError from `serve`, known by name: every command starts here, and importing the
  // class would load the server and its database for `chat send` too.
  if (error instanceof ProtocolError || (error instanceof Error && error.name === "StorageError")) {
    return { message: error.message, exitCode: EXIT_FAILURE };
  }
  if (error instanceof Deno.errors.NotCapable) {
    // The runtime's own advice ("run again with --allow-all") means nothing to a user of the binary.
    const denied = /access to "([^"]*)"/.exec(error.message)?.[1];
    return {
      message: denied === undefined
        ? error.message.replace(/, run again with .*$/, "")
        : `This program is not allowed to use "${denied}"`,
      exitCode: EXIT_FAILURE,
    };
  }
  if (
    error instanceof Deno.errors.AddrInUse ||
    error instanceof Deno.errors.AddrNotAvailable ||
    error instanceof Deno.errors.PermissionDenied ||
    error instanceof Deno.errors.ConnectionRefused ||
    error instanceof Deno.errors.InvalidData
  ) {
    return { message: error.message, exitCode: EXIT_FAILURE };
  }
  if (
    error instanceof TypeError && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS")
  ) {
    const option = /'(?:-\w, )?(--?[\w-]+)/.exec(error.message)?.[1];
    const positional = /'([^']*)'/.exec(error.message)?.[1];
    let message = error.message;
    if (error.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && option) {
      message = `Unknown option "${option}"`;
    } else if (error.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && option) {
      message = /does not take an argument/.test(error.message)
        ? `Option "${option}" does not take a value`
        : `Option "${option}" needs a value`;
    } else if (error.code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL" && positional !== undefined) {
      message = `Unexpected argument "${positional}"`;
    }
    return { message, exitCode: EXIT_USAGE };
  }
  return undefined;
}
