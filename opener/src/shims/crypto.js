// The slip39 package calls Node's `crypto` for PBKDF2-HMAC-SHA256, HMAC-SHA256 and random bytes.
// In the page those calls go to @noble/hashes (audited) and WebCrypto's CSPRNG instead; the build
// aliases `crypto` to this module. Nothing here implements a primitive.
import { pbkdf2 } from "@noble/hashes/pbkdf2.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";

function bytes(value) {
  return value instanceof Uint8Array ? value : Uint8Array.from(value);
}

export function randomBytes(length) {
  return globalThis.crypto.getRandomValues(new Uint8Array(length));
}

export function pbkdf2Sync(password, salt, iterations, keylen, digest) {
  if (digest !== "sha256") throw new Error(`unsupported digest ${digest}`);
  return pbkdf2(sha256, bytes(password), bytes(salt), { c: iterations, dkLen: keylen });
}

export function createHmac(digest, key) {
  if (digest !== "sha256") throw new Error(`unsupported digest ${digest}`);
  const mac = hmac.create(sha256, bytes(key));
  return {
    update(data) {
      mac.update(bytes(data));
      return this;
    },
    digest() {
      return mac.digest();
    },
  };
}

export default { randomBytes, pbkdf2Sync, createHmac };
