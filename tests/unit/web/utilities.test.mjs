// The latency and throughput protocols against fake servers speaking them.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ACK_LENGTH, measureLatency, measureThroughput } from "../../../src/weron/web/utilities.js";
import { escapeControls, messageLines, parseChannels } from "../../../src/weron/web/chat.js";
import { parseIceServers } from "../../../src/weron/web/ice.js";

/** A channel whose peer runs `serve(message, reply)` on each message. */
function fakeChannel(serve) {
  const queue = [];
  return {
    queue,
    sent: [],
    send(data) {
      this.sent.push(data);
      serve(data, (reply) => queue.push(reply));
    },
    async receive() {
      if (!queue.length) throw new Error("timeout");
      return queue.shift();
    },
    async drained() {},
  };
}

test("latency: each echo is one round trip, stopped on request", async () => {
  const stop = { stopped: false };
  const lines = [];
  const channel = fakeChannel((data, reply) => reply(data));
  const totals = await measureLatency(channel, { packetLength: 64, pause: 0 }, ({ line }) => {
    lines.push(line);
    if (lines.length === 3) stop.stopped = true;
  }, stop);
  assert.equal(totals.roundTrips.length, 3);
  assert.match(lines[0], /^64 B written and acknowledged in [\d.]+(ns|µs|ms)$/);
  assert.ok(channel.sent.every((packet) => packet.length === 64));
});

test("latency: no echo is an error that says why", async () => {
  await assert.rejects(measureLatency(fakeChannel(() => {}), { pause: 0 }, () => {}, { stopped: false }), /no echo/);
});

test("throughput: a batch is packetCount messages, then the server's acknowledgement", async () => {
  let count = 0;
  const channel = fakeChannel((_, reply) => {
    if (++count % 5 === 0) reply(new Uint8Array(ACK_LENGTH));
  });
  const stop = { stopped: false };
  const batches = [];
  const totals = await measureThroughput(channel, { packetLength: 1000, packetCount: 5 }, (batch) => {
    batches.push(batch);
    if (batches.length === 2) stop.stopped = true;
  }, stop);
  assert.equal(channel.sent.length, 10);
  assert.equal(totals.bytes, 10000);
  assert.match(batches[0].line, /^[\d.]+ MB\/s \([\d.]+ Mb\/s\) \(0 MB read in /);
});

test("throughput: an early acknowledgement means a smaller packet count on the server", async () => {
  const channel = fakeChannel((_, reply) => reply(new Uint8Array(ACK_LENGTH)));
  await assert.rejects(measureThroughput(channel, { packetLength: 10, packetCount: 5 }, () => {}, { stopped: false }), /smaller/);
});

test("chat lines: one per line of text, control characters shown, not obeyed", () => {
  const data = new TextEncoder().encode("hi\nthere\x1b[2J\n");
  assert.deepEqual(messageLines("bob", "weron/chat/primary", data), [
    "bob@weron/chat/primary: hi",
    "bob@weron/chat/primary: there\\x1b[2J",
  ]);
  assert.equal(escapeControls("a\u0007b"), "a\\x07b");
  assert.deepEqual(parseChannels(" a, ,b "), ["a", "b"]);
});

test("ICE servers in the CLI's format", () => {
  assert.deepEqual(parseIceServers("stun:s:3478, u:p@turn:t:3478?transport=tcp"), [
    { urls: "stun:s:3478" },
    { urls: "turn:t:3478?transport=tcp", username: "u", credential: "p" },
  ]);
  assert.throws(() => parseIceServers("nouser@turn:t:1"));
});

test("a packet larger than the connection carries is a clear error", async () => {
  const channel = { ...fakeChannel(() => {}), maxMessageSize: 1000 };
  await assert.rejects(measureLatency(channel, { packetLength: 1001 }, () => {}, { stopped: false }), /largest message/);
  await assert.rejects(measureThroughput(channel, { packetLength: 1001 }, () => {}, { stopped: false }), /largest message/);
});
