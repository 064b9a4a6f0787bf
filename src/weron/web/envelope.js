// The encrypted envelope around every relayed signaling message (docs/wire-protocol.md#envelope):
// nonce(12) || AES-256-GCM(ciphertext || tag(16)), key = SHA-224(key) || four zero bytes.
// The derivation is weak, but it is what every weron peer speaks.

import { sha224 } from "./sha224.js";

export const NONCE_SIZE = 12;
export const TAG_SIZE = 16;

export class EnvelopeError extends Error {}

/** The 32 key bytes for a community key string. */
export function deriveKey(key) {
  const bytes = new Uint8Array(32);
  bytes.set(sha224(new TextEncoder().encode(key)));
  return bytes;
}

/** Seals and opens relayed messages with one community key (WebCrypto does the AES). */
export class Envelope {
  static async create(key) {
    const material = await crypto.subtle.importKey("raw", deriveKey(key), "AES-GCM", false, [
      "encrypt",
      "decrypt",
    ]);
    return new Envelope(material);
  }

  constructor(material) {
    this.material = material;
  }

  async seal(plaintext) {
    const nonce = crypto.getRandomValues(new Uint8Array(NONCE_SIZE));
    const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce }, this.material, plaintext);
    const out = new Uint8Array(NONCE_SIZE + sealed.byteLength);
    out.set(nonce);
    out.set(new Uint8Array(sealed), NONCE_SIZE);
    return out;
  }

  async open(data) {
    if (data.length < NONCE_SIZE + TAG_SIZE) {
      throw new EnvelopeError(`envelope too short: ${data.length} bytes`);
    }
    try {
      const opened = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: data.subarray(0, NONCE_SIZE) },
        this.material,
        data.subarray(NONCE_SIZE),
      );
      return new Uint8Array(opened);
    } catch {
      throw new EnvelopeError("envelope does not authenticate (wrong key or tampered)");
    }
  }
}
