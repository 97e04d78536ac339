/**
 * The PostgreSQL client (porsager's `postgres`), pinned. Kept apart from the
 * other pins so that only a server given a `postgres://` database loads it.
 *
 * @module
 */

export { default as postgres } from "npm:postgres@3.4.7";
export type { Sql, TransactionSql } from "npm:postgres@3.4.7";
