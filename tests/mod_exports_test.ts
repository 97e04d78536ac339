import { deepEqual, equal } from "node:assert/strict";
import * as mod from "../mod.ts";

Deno.test("mod.ts exports what users need and no build constant or internal helper", () => {
  deepEqual(Object.keys(mod).sort(), [
    "ChatClient",
    "ConnectionError",
    "DEFAULT_LIMITS",
    "ProtocolError",
    "StorageError",
    "connect",
    "createIdentity",
    "loadIdentity",
    "serve",
  ]);
  // Clients come from connect() only: no public static that makes one.
  deepEqual(Object.getOwnPropertyNames(mod.ChatClient).sort(), ["length", "name", "prototype"]);
  equal(new mod.ConnectionError("closed", "Closed") instanceof mod.ProtocolError, true);
});
