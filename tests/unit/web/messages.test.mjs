import assert from "node:assert/strict";
import { test } from "node:test";

import {
  SignalingMessageError,
  decodeDescription,
  decodeMessage,
  encodeDescription,
  encodeMessage,
} from "../../../src/weron/web/messages.js";

const bytes = (text) => new TextEncoder().encode(text);
const text = (data) => new TextDecoder().decode(data);

test("messages are written as the Go peers write them", () => {
  assert.equal(text(encodeMessage({ type: "introduction", from: "a" })), '{"type":"introduction","from":"a"}');
  assert.equal(
    text(encodeMessage({ type: "candidate", from: "a", to: "b", payload: bytes("candidate:1") })),
    '{"type":"candidate","from":"a","to":"b","payload":"Y2FuZGlkYXRlOjE="}',
  );
});

test("decode is the inverse of encode", () => {
  const message = { type: "offer", from: "a", to: "b", payload: encodeDescription("offer", "v=0") };
  const decoded = decodeMessage(encodeMessage(message));
  assert.deepEqual(decoded, { ...message, payload: decoded.payload });
  assert.deepEqual(decodeDescription(decoded.payload), { type: "offer", sdp: "v=0" });
});

test("bad input throws SignalingMessageError", () => {
  for (const bad of [
    "not json",
    "[]",
    '{"type":"introduction"}',
    '{"type":"hello","from":"a"}',
    '{"type":"offer","from":"a"}',
    '{"type":"offer","from":"a","to":"b","payload":"%%%"}',
    '{"type":"offer","from":"a","to":"b","payload":5}',
  ]) {
    assert.throws(() => decodeMessage(bytes(bad)), SignalingMessageError, bad);
  }
  assert.throws(() => decodeMessage(new Uint8Array([0xff, 0xfe])), SignalingMessageError);
  assert.throws(() => decodeDescription(bytes('{"type":"pranswer","sdp":""}')), SignalingMessageError);
});
