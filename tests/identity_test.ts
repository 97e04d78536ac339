import { deepEqual, equal, match, notEqual, rejects, throws } from "node:assert/strict";
import { join } from "node:path";
import {
  createIdentity,
  fingerprintOf,
  loadIdentity,
  proofBytes,
  verifySignature,
} from "../_common/identity.ts";
import { flipBit, withTempDir } from "./_helpers.ts";

const data = new TextEncoder().encode("chat-auth-v1\nnonce\nalice\n127.0.0.1:7777");

Deno.test("a signature verifies for the key and the data it was made with", async () => {
  const identity = await createIdentity();
  const signature = await identity.sign(data);
  equal(Uint8Array.fromBase64(signature).length, 64);
  equal(await verifySignature(identity.publicKey, signature, data), true);
});

Deno.test("a signature does not verify for other data, another key or when tampered", async (t) => {
  const identity = await createIdentity();
  const other = await createIdentity();
  const signature = await identity.sign(data);

  await t.step("other data", async () => {
    const changed = flipBit(data, data.length * 8 - 8);
    equal(await verifySignature(identity.publicKey, signature, changed), false);
    equal(await verifySignature(identity.publicKey, signature, new Uint8Array()), false);
  });

  await t.step("another key", async () => {
    equal(await verifySignature(other.publicKey, signature, data), false);
  });

  await t.step("every single flipped bit of the signature", async () => {
    const raw = Uint8Array.fromBase64(signature);
    for (let bit = 0; bit < raw.length * 8; bit++) {
      const tampered = flipBit(raw, bit);
      equal(await verifySignature(identity.publicKey, tampered.toBase64(), data), false, `${bit}`);
    }
  });
});

Deno.test("garbage keys and signatures give false, never an exception", async (t) => {
  const identity = await createIdentity();
  const signature = await identity.sign(data);
  const key = identity.publicKey;
  const cases: [string, unknown, unknown, unknown][] = [
    ["empty key", "", signature, data],
    ["empty signature", key, "", data],
    ["key not base64", "not base64 at all!", signature, data],
    ["signature not base64", key, "@@@@", data],
    ["key without padding", key.replace(/=+$/, ""), signature, data],
    ["signature without padding", key, signature.replace(/=+$/, ""), data],
    ["key too short", new Uint8Array(31).toBase64(), signature, data],
    ["key too long", new Uint8Array(33).toBase64(), signature, data],
    ["signature too short", key, new Uint8Array(63).toBase64(), data],
    ["signature too long", key, Uint8Array.fromBase64(signature).toBase64() + "AAAA", data],
    ["all-zero key", new Uint8Array(32).toBase64(), signature, data],
    ["all-ones key", new Uint8Array(32).fill(255).toBase64(), signature, data],
    ["all-zero signature", key, new Uint8Array(64).toBase64(), data],
    ["key not a string", 42, signature, data],
    ["signature not a string", key, null, data],
    ["data not bytes", key, signature, "text"],
  ];
  for (const [name, publicKey, sig, bytes] of cases) {
    await t.step(name, async () => {
      equal(
        await verifySignature(publicKey as string, sig as string, bytes as Uint8Array),
        false,
      );
    });
  }
});

Deno.test("the public key is 32 raw bytes in padded base64", async () => {
  const identity = await createIdentity();
  match(identity.publicKey, /^[A-Za-z0-9+/]{43}=$/);
  equal(Uint8Array.fromBase64(identity.publicKey).length, 32);
});

Deno.test("the fingerprint is the ssh-style SHA-256 of the raw public key", async () => {
  const identity = await createIdentity();
  match(identity.fingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
  const raw = Uint8Array.fromBase64(identity.publicKey);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", raw));
  const expected = "SHA256:" + btoa(String.fromCharCode(...digest)).replace(/=+$/, "");
  equal(identity.fingerprint, expected);
  equal(await fingerprintOf(identity.publicKey), expected);
  equal(await fingerprintOf(identity.publicKey), expected);
  notEqual((await createIdentity()).fingerprint, identity.fingerprint);
});

Deno.test("fingerprintOf rejects a malformed key", async () => {
  await rejects(fingerprintOf("***"), SyntaxError);
  await rejects(fingerprintOf(new Uint8Array(16).toBase64()), RangeError);
});

const PROOF = {
  server: "a.example:7777",
  tls: "",
  name: "alice",
  serverNonce: "nonce1",
  clientNonce: "mine1",
};

Deno.test("the key proof binds the server, its certificate, the name and both nonces", () => {
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  equal(text(proofBytes(PROOF)), "chat-auth-v2\na.example:7777\n\nalice\nnonce1\nmine1");
  equal(
    text(proofBytes({ ...PROOF, server: "[::1]:7777", tls: "SHA256:AB", name: "zoë" })),
    "chat-auth-v2\n[::1]:7777\nSHA256:AB\nzoë\nnonce1\nmine1",
  );
  for (const label of ["server", "tls", "name", "serverNonce", "clientNonce"] as const) {
    throws(() => proofBytes({ ...PROOF, [label]: "a\nb" }), TypeError);
  }
});

Deno.test("a key proof does not verify for another server, certificate, name or nonce", async () => {
  const identity = await createIdentity();
  const signature = await identity.sign(proofBytes(PROOF));
  equal(await verifySignature(identity.publicKey, signature, proofBytes(PROOF)), true);
  for (
    const change of [
      { server: "b.example:7777" },
      { server: "a.example:7778" },
      { tls: "SHA256:AB" },
      { name: "bob" },
      { serverNonce: "nonce2" },
      { clientNonce: "mine2" },
    ]
  ) {
    equal(
      await verifySignature(identity.publicKey, signature, proofBytes({ ...PROOF, ...change })),
      false,
    );
  }
});

Deno.test("loadIdentity creates a private key file once and loads it again", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "nested", "config", "identity.pem");
    const first = await loadIdentity(path);
    const text = await Deno.readTextFile(path);
    match(text, /^-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+\n-----END PRIVATE KEY-----\n$/);
    if (Deno.build.os !== "windows") equal(Deno.statSync(path).mode! & 0o777, 0o600);

    const second = await loadIdentity(path);
    equal(second.publicKey, first.publicKey);
    equal(second.fingerprint, first.fingerprint);
    equal(await Deno.readTextFile(path), text);

    const signature = await second.sign(data);
    equal(await verifySignature(first.publicKey, signature, data), true);
  });
});

Deno.test("concurrent loadIdentity calls agree on one key", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "identity.pem");
    const identities = await Promise.all(Array.from({ length: 8 }, () => loadIdentity(path)));
    const fingerprints = new Set(identities.map((identity) => identity.fingerprint));
    deepEqual([...fingerprints], [(await loadIdentity(path)).fingerprint]);
  });
});

Deno.test("loadIdentity reads a key written by another program", async () => {
  // An Ed25519 PKCS#8 key as `openssl genpkey -algorithm ed25519` writes it,
  // from RFC 8410 section 10.3; its public key is in the RFC as well.
  const pem = "-----BEGIN PRIVATE KEY-----\n" +
    "MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n" +
    "-----END PRIVATE KEY-----\n";
  const publicKey = "Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=";
  await withTempDir(async (dir) => {
    const path = join(dir, "identity.pem");
    await Deno.writeTextFile(path, pem);
    const identity = await loadIdentity(path);
    equal(identity.publicKey, publicKey);
    equal(identity.fingerprint, await fingerprintOf(publicKey));
  });
});

Deno.test("a corrupt identity file gives an error that names it and says what to do", async (t) => {
  const cases: [string, string][] = [
    ["empty", ""],
    ["not PEM", "hello\n"],
    ["bad base64", "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n"],
    [
      "truncated key",
      "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK\n-----END PRIVATE KEY-----\n",
    ],
    [
      "an RSA-sized blob",
      `-----BEGIN PRIVATE KEY-----\n${new Uint8Array(600).toBase64()}\n-----END PRIVATE KEY-----\n`,
    ],
  ];
  await withTempDir(async (dir) => {
    for (const [name, content] of cases) {
      await t.step(name, async () => {
        const path = join(dir, `${name}.pem`);
        await Deno.writeTextFile(path, content);
        await rejects(loadIdentity(path), (error: Error) => {
          equal(error instanceof Error, true);
          match(error.message, /^Cannot load the identity ".*": .*move it away/);
          equal(error.message.includes(`"${path}"`), true);
          return true;
        });
        equal(await Deno.readTextFile(path), content, "the file is left alone");
      });
    }
  });
});
