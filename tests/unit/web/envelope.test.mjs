import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { test } from "node:test";

import { Envelope, EnvelopeError, deriveKey } from "../../../src/weron/web/envelope.js";

test("the key is SHA-224 of the key string and four zero bytes", () => {
  const key = deriveKey("mykey");
  assert.equal(key.length, 32);
  assert.deepEqual([...key.subarray(28)], [0, 0, 0, 0]);
});

test("seal then open gives the plaintext back, with a fresh nonce each time", async () => {
  const envelope = await Envelope.create("mykey");
  const plaintext = new TextEncoder().encode('{"type":"introduction","from":"a"}');
  const first = await envelope.seal(plaintext);
  const second = await envelope.seal(plaintext);
  assert.notDeepEqual(first.subarray(0, 12), second.subarray(0, 12));
  assert.deepEqual(await envelope.open(first), plaintext);
});

test("a wrong key, a truncated or a tampered envelope is refused", async () => {
  const sealed = await (await Envelope.create("mykey")).seal(new Uint8Array([1, 2, 3]));
  const envelope = await Envelope.create("otherkey");
  await assert.rejects(envelope.open(sealed), EnvelopeError);
  const ours = await Envelope.create("mykey");
  await assert.rejects(ours.open(sealed.subarray(0, 20)), EnvelopeError);
  const tampered = sealed.slice();
  tampered[15] ^= 1;
  await assert.rejects(ours.open(tampered), EnvelopeError);
});

test("opens what Python's Envelope sealed, and Python opens ours", { skip: !process.env.WERON_ENVELOPE_VECTORS }, async () => {
  const { key, sealed, plaintext } = JSON.parse(readFileSync(process.env.WERON_ENVELOPE_VECTORS, "utf8"));
  const envelope = await Envelope.create(key);
  assert.equal(Buffer.from(await envelope.open(Buffer.from(sealed, "hex"))).toString("hex"), plaintext);
  const ours = await envelope.seal(Buffer.from(plaintext, "hex"));
  writeFileSync(`${process.env.WERON_ENVELOPE_VECTORS}.sealed`, Buffer.from(ours).toString("hex"));
});
