import assert from "node:assert/strict";
import { test } from "node:test";

import { Mesh, MAX_EARLY_CANDIDATES } from "../../../src/weron/web/mesh.js";
import { decodeDescription, encodeDescription } from "../../../src/weron/web/messages.js";

const bytes = (text) => new TextEncoder().encode(text);
const kinds = (actions) => actions.map((a) => a.do);
const offer = (from, to, sdp = "v=0 offer") => ({ type: "offer", from, to, payload: encodeDescription("offer", sdp) });
const answer = (from, to, sdp = "v=0 answer") => ({ type: "answer", from, to, payload: encodeDescription("answer", sdp) });
const candidate = (from, to, line) => ({ type: "candidate", from, to, payload: bytes(line) });

test("joining introduces us", () => {
  assert.deepEqual(new Mesh("me", 10).signalerConnected(), [{ do: "send", message: { type: "introduction", from: "me" } }]);
});

test("an introduction gets an offer; held candidates follow it; the answer completes", () => {
  const mesh = new Mesh("me", 10);
  const [open] = mesh.receive({ type: "introduction", from: "them" }, 0);
  assert.deepEqual(open, { do: "open", link: 1, peer: "them", initiator: true });
  assert.deepEqual(mesh.localCandidate(1, "candidate:1 1 udp 1 192.0.2.1 1 typ host"), []);
  const sent = mesh.localDescription(1, "offer", "v=0 ours");
  assert.deepEqual(sent.map((a) => a.message.type), ["offer", "candidate"]);
  assert.equal(sent[0].message.to, "them");
  assert.deepEqual(decodeDescription(sent[0].message.payload), { type: "offer", sdp: "v=0 ours" });
  assert.equal(mesh.localCandidate(1, "candidate:2").length, 1);
  // A candidate before the answer waits for it.
  assert.deepEqual(mesh.receive(candidate("them", "me", "candidate:9"), 0), []);
  assert.deepEqual(mesh.receive(answer("them", "me"), 0), [
    { do: "complete", link: 1, sdp: "v=0 answer" },
    { do: "candidate", link: 1, candidate: "candidate:9" },
  ]);
  assert.deepEqual(kinds(mesh.receive(answer("them", "me"), 0)), ["notice"]);
});

test("an offer is answered; candidates that came first are added after it", () => {
  const mesh = new Mesh("me", 10);
  mesh.receive(candidate("them", "me", "candidate:early"), 0);
  const actions = mesh.receive(offer("them", "me"), 0);
  assert.deepEqual(kinds(actions), ["open", "answer", "candidate"]);
  assert.equal(actions[0].initiator, false);
  assert.deepEqual(mesh.receive(candidate("them", "me", "candidate:late"), 0), [{ do: "candidate", link: 1, candidate: "candidate:late" }]);
});

test("messages to others, from ourselves and malformed descriptions are ignored", () => {
  const mesh = new Mesh("me", 10);
  assert.deepEqual(mesh.receive(offer("them", "someone-else"), 0), []);
  assert.deepEqual(mesh.receive({ type: "introduction", from: "me" }, 0), []);
  assert.deepEqual(mesh.receive({ type: "introduction", from: "x".repeat(300) }, 0), []);
  assert.deepEqual(kinds(mesh.receive({ type: "offer", from: "a", to: "me", payload: bytes("junk") }, 0)), ["notice"]);
  assert.deepEqual(kinds(mesh.receive(offer("a", "me").payload && { ...answer("a", "me"), type: "offer" }, 0)), ["notice"]);
});

test("a flood of early candidates is capped", () => {
  const mesh = new Mesh("me", 10);
  for (let i = 0; i < 500; i++) mesh.receive(candidate("them", "me", `candidate:${i}`), 0);
  const actions = mesh.receive(offer("them", "me"), 0);
  assert.equal(actions.filter((a) => a.do === "candidate").length, MAX_EARLY_CANDIDATES);
});

test("a re-introduction replaces a link not connected, but not more than once a second", () => {
  const mesh = new Mesh("me", 10);
  mesh.receive({ type: "introduction", from: "them" }, 0);
  assert.deepEqual(mesh.receive({ type: "introduction", from: "them" }, 0.5), []);
  assert.deepEqual(kinds(mesh.receive({ type: "introduction", from: "them" }, 2)), ["close", "open"]);
});

test("a connected member that introduces itself again keeps its link; offered to if it is lost", () => {
  const mesh = new Mesh("me", 10);
  mesh.receive({ type: "introduction", from: "them" }, 0);
  mesh.connected(1);
  assert.deepEqual(mesh.receive({ type: "introduction", from: "them" }, 5), []);
  assert.deepEqual(mesh.tick(20), []); // still connected at the recheck
  mesh.receive({ type: "introduction", from: "them" }, 30);
  mesh.closed(1); // ICE gave up on it meanwhile
  assert.deepEqual(kinds(mesh.tick(41)), ["open"]);
});

test("a link not connected within the timeout is closed; a connected one stays", () => {
  const mesh = new Mesh("me", 10);
  mesh.receive({ type: "introduction", from: "a" }, 0);
  mesh.receive({ type: "introduction", from: "b" }, 0);
  mesh.connected(2);
  assert.deepEqual(kinds(mesh.tick(11)), ["notice", "close"]);
  assert.deepEqual(mesh.tick(30), []);
  assert.deepEqual(mesh.closed(2), [{ do: "close", link: 2 }]);
  assert.deepEqual(mesh.closed(2), []);
});

test("a flood of introductions waits for negotiation slots; the newest get them first", async () => {
  const { MAX_NEGOTIATING } = await import("../../../src/weron/web/mesh.js");
  const mesh = new Mesh("me", 10);
  for (let i = 0; i < MAX_NEGOTIATING; i++) mesh.receive({ type: "introduction", from: `fake${i}` }, 0);
  assert.deepEqual(mesh.receive({ type: "introduction", from: "honest" }, 0.1), []);
  assert.deepEqual(mesh.receive(offer("late", "me"), 1).map((a) => a.do), ["notice"]);
  // The fakes never answer: they are closed after the timeout, and the newcomer gets an offer
  // (more than a timeout after its introduction: it waited for the slot).
  const actions = mesh.tick(10.5);
  assert.equal(actions.filter((a) => a.do === "close").length, MAX_NEGOTIATING);
  assert.deepEqual(actions.filter((a) => a.do === "open").map((a) => a.peer), ["honest"]);
});

test("early candidates nobody offers for expire", () => {
  const mesh = new Mesh("me", 10);
  mesh.receive(candidate("ghost", "me", "candidate:1"), 0);
  mesh.tick(11);
  assert.deepEqual(mesh.receive(offer("ghost", "me"), 12).map((a) => a.do), ["open", "answer"]);
});
