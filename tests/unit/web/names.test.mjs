import assert from "node:assert/strict";
import { test } from "node:test";

import * as names from "../../../src/weron/web/names.js";

const wire = (...messages) => new TextEncoder().encode(messages.join(""));

test("greetings keep their nanosecond timestamps exactly", () => {
  const encoded = names.encode(names.greeting(["a"], 1700000000123456789n));
  assert.equal(new TextDecoder().decode(encoded), '{"type":"greeting","ids":{"a":{}},"timestamp":1700000000123456789}\n');
  assert.equal(names.decode(encoded)[0].timestamp, 1700000000123456789n);
});

test("several messages back to back, with or without newlines", () => {
  const decoded = names.decode(wire('{"type":"claimed","id":"x}"}', '{"type":"backoff"}\n', ' {"type":"kick","id":"y"}'));
  assert.deepEqual(decoded.map((m) => m.type), ["claimed", "backoff", "kick"]);
  assert.equal(decoded[0].id, "x}");
});

test("garbage is a NameMessageError", () => {
  for (const bad of ["{", "[1]", "5", '{"id":"x"}', '{"type":"x"'])
    assert.throws(() => names.decode(wire(bad)), names.NameMessageError, bad);
  assert.throws(() => names.decode(new Uint8Array([0xff])), names.NameMessageError);
});

test("the older of two rivals tells the younger to back off", () => {
  const older = new names.NameNegotiation(["a", "b"], 1n);
  const younger = new names.NameNegotiation(["a"], 2n);
  const olderView = new names.PeerNames();
  const youngerView = new names.PeerNames();
  const [hello] = younger.greetings();
  assert.deepEqual(older.receive(hello, youngerView, 0).replies, [names.backoff()]);
  younger.receive(older.greetings()[0], olderView, 0);
  assert.equal(younger.receive(names.backoff(), olderView, 0).backOff, true);
});

test("a claimed name is dropped from our candidates; we then claim another", () => {
  const ours = new names.NameNegotiation(["a", "b"], 2n);
  const view = new names.PeerNames();
  assert.equal(ours.receive(names.claimed("a"), view, 0).peerName, "a");
  assert.equal(ours.claim(0), "b");
  assert.deepEqual(ours.greetings(), [names.greeting(["b"], 2n), names.claimed("b")]);
});

test("a greeting with our claimed name gets a kick; a kick only counts from the holder", () => {
  const ours = new names.NameNegotiation(["a"], 1n);
  ours.claim(0);
  assert.deepEqual(ours.receive(names.greeting(["a"], 5n), new names.PeerNames(), 0).replies, [names.kick("a")]);
  const other = new names.NameNegotiation(["a", "b"], 1n);
  const hostile = new names.PeerNames();
  other.receive(names.kick("a"), hostile, 0); // never claimed "a": ignored
  assert.deepEqual(other.candidates, ["a", "b"]);
  other.receive(names.claimed("a"), hostile, 0);
  assert.deepEqual(other.candidates, ["b"]);
});

test("no candidate left: all available names have been claimed", () => {
  const ours = new names.NameNegotiation(["a"], 1n);
  ours.receive(names.claimed("a"), new names.PeerNames(), 0);
  assert.throws(() => ours.claim(0), names.AllNamesClaimedError);
});

test("the younger of two simultaneous claims gives its name up, a settled one keeps it", () => {
  const ours = new names.NameNegotiation(["a", "b"], 5n, 15);
  ours.claim(100);
  const older = new names.PeerNames();
  ours.receive(names.greeting(["a"], 1n), older, 101);
  const reaction = ours.receive(names.claimed("a"), older, 101);
  assert.equal(reaction.gaveUp, "a");
  assert.deepEqual(ours.candidates, ["b"]);
  const settled = new names.NameNegotiation(["a"], 5n, 15);
  settled.claim(0);
  const forger = new names.PeerNames();
  settled.receive(names.greeting(["a"], 1n), forger, 100);
  assert.equal(settled.receive(names.claimed("a"), forger, 100).gaveUp, null);
});

test("unknown message types and malformed greetings are errors, never crashes", () => {
  const ours = new names.NameNegotiation(["a"], 1n);
  assert.throws(() => ours.receive({ type: "hello" }, new names.PeerNames(), 0), names.NameMessageError);
  assert.throws(() => ours.receive({ type: "greeting", ids: {}, timestamp: "x" }, new names.PeerNames(), 0), names.NameMessageError);
  assert.throws(() => ours.receive({ type: "claimed" }, new names.PeerNames(), 0), names.NameMessageError);
});
