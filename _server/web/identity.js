// The browser's Ed25519 key, for names bound to keys (protocol/PROTOCOL.md section 10.2).
// Only in a secure context (https, or localhost): elsewhere the browser offers no WebCrypto.
// The private key is made non-extractable and kept in IndexedDB, per server address.

const DATABASE = "chat";
const STORE = "keys";
const ENTRY = "identity";

function base64(bytes) {
  let text = "";
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text);
}

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DATABASE, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function transact(db, mode, work) {
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const request = work(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(request.result);
    tx.onerror = () => reject(tx.error);
  });
}

/** An Ed25519 key that signs the key proof, or undefined where the browser cannot hold one. */
export async function loadIdentity() {
  if (!globalThis.isSecureContext || !crypto.subtle || !globalThis.indexedDB) return undefined;
  try {
    const db = await open();
    let pair = await transact(db, "readonly", (store) => store.get(ENTRY));
    if (pair === undefined) {
      pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
      await transact(db, "readwrite", (store) => store.put(pair, ENTRY));
    }
    db.close();
    const raw = await crypto.subtle.exportKey("raw", pair.publicKey);
    const digest = await crypto.subtle.digest("SHA-256", raw);
    return {
      key: base64(raw),
      fingerprint: `SHA256:${base64(digest).replace(/=+$/, "")}`,
      /** Signs the proof of section 10.2; resolves with the client nonce and the signature. */
      async prove({ server, tls = "", name, nonce }) {
        const mine = base64(crypto.getRandomValues(new Uint8Array(24)));
        const proof = ["chat-auth-v2", server, tls, name, nonce, mine].join("\n");
        const signature = await crypto.subtle.sign(
          { name: "Ed25519" },
          pair.privateKey,
          new TextEncoder().encode(proof),
        );
        return { nonce: mine, signature: base64(signature) };
      },
    };
  } catch {
    // No Ed25519 in this browser, or no storage: join without a key.
    return undefined;
  }
}

/** The server as the page reached it, `HOST:PORT`, as a key proof names it. */
export function serverAddress() {
  const port = location.port || (location.protocol === "https:" ? "443" : "80");
  return `${location.hostname}:${port}`;
}
