// Signaling message shapes exchanged through the relay (docs/wire-protocol.md#signaling-messages).
// Pure data and JSON: `payload` is a Uint8Array here and base64 (standard, padded) on the wire.

export const MAX_ID_LENGTH = 256;

export class SignalingMessageError extends Error {}

const EXCHANGES = new Set(["offer", "answer", "candidate"]);

export function toBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

export function fromBase64(text) {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
    throw new SignalingMessageError("payload is not valid base64");
  }
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** {type: "introduction", from} or {type, from, to, payload} as the Go peers write them. */
export function encodeMessage(message) {
  const document =
    message.type === "introduction"
      ? { type: "introduction", from: message.from }
      : { type: message.type, from: message.from, to: message.to, payload: toBase64(message.payload) };
  return new TextEncoder().encode(JSON.stringify(document));
}

function stringField(document, name) {
  const value = document[name];
  if (typeof value !== "string") throw new SignalingMessageError(`field ${name} must be a string`);
  return value;
}

/** Parse decrypted bytes; anything else than a message we understand throws SignalingMessageError. */
export function decodeMessage(bytes) {
  let document;
  try {
    document = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw new SignalingMessageError(`not a JSON document: ${error.message}`);
  }
  if (typeof document !== "object" || document === null || Array.isArray(document)) {
    throw new SignalingMessageError("expected a JSON object");
  }
  const type = stringField(document, "type");
  const from = stringField(document, "from");
  if (type === "introduction") return { type, from };
  if (!EXCHANGES.has(type)) throw new SignalingMessageError(`unknown message type ${type.slice(0, 64)}`);
  const to = stringField(document, "to");
  const encoded = document.payload ?? "";
  if (typeof encoded !== "string") throw new SignalingMessageError("payload must be a base64 string");
  return { type, from, to, payload: fromBase64(encoded) };
}

/** Payload of an offer or answer: the JSON session description the Go peers marshal. */
export function encodeDescription(type, sdp) {
  return new TextEncoder().encode(JSON.stringify({ type, sdp }));
}

export function decodeDescription(payload) {
  let document;
  try {
    document = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
  } catch (error) {
    throw new SignalingMessageError(`session description is not JSON: ${error.message}`);
  }
  if (typeof document !== "object" || document === null) {
    throw new SignalingMessageError("session description must be a JSON object");
  }
  const type = stringField(document, "type");
  if (type !== "offer" && type !== "answer") {
    throw new SignalingMessageError(`session description type must be offer or answer, got ${type.slice(0, 64)}`);
  }
  return { type, sdp: stringField(document, "sdp") };
}
