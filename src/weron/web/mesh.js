// Offer/answer negotiation with every member of a community, as a state machine without I/O
// (docs/wire-protocol.md#signaling-messages): the browser's counterpart of
// weron.peers.session, smaller (no make-before-break: a new offer replaces a connection). Methods take events and `now` (seconds) and return actions
// for member.js to carry out:
//   {do: "send", message}                          to the signaler
//   {do: "open", link, peer, initiator}             new RTCPeerConnection (initiator: channels + offer)
//   {do: "answer", link, sdp} / {do: "complete", link, sdp} / {do: "candidate", link, candidate}
//   {do: "close", link}
//   {do: "notice", event, fields}                   worth a log line

import { MAX_ID_LENGTH, decodeDescription, encodeDescription } from "./messages.js";

export const MAX_SDP_LENGTH = 64 << 10;
export const MAX_CANDIDATE_LENGTH = 1024;
export const MAX_EARLY_CANDIDATES = 64; // per member, before the description they belong to
export const MAX_EARLY_SENDERS = 256;
export const MAX_NEGOTIATING = 64; // links not yet connected, all members together
export const MAX_DEFERRED = 256; // introductions waiting for a free negotiation slot
export const REINTRODUCTION_GUARD = 1; // s: at most one new link per member this often

const bytes = (text) => new TextEncoder().encode(text);
const text = (data) => new TextDecoder().decode(data);

export class Mesh {
  constructor(id, timeout) {
    this.id = id;
    this.timeout = timeout;
    this.links = new Map(); // link number -> link
    this.byPeer = new Map(); // peer id -> link
    this.early = new Map(); // peer id -> candidates that came before any description
    this.deferred = new Map(); // peer id -> introductions waiting for a slot, oldest first
    this.recheck = new Map(); // peer id -> when to offer, unless still connected by then
    this.next = 1;
  }

  signalerConnected() {
    return [{ do: "send", message: { type: "introduction", from: this.id } }];
  }

  /** A decrypted, decoded signaling message. */
  receive(message, now) {
    const peer = message.from;
    if (peer === this.id || peer.length === 0 || peer.length > MAX_ID_LENGTH) return [];
    if (message.type === "introduction") return this.introduced(peer, now);
    if (message.to !== this.id) return [];
    if (message.type === "offer" || message.type === "answer") {
      let description;
      try {
        description = decodeDescription(message.payload);
      } catch (error) {
        return [{ do: "notice", event: "Ignoring a bad session description", fields: { peer, reason: error.message } }];
      }
      if (description.type !== message.type || description.sdp.length > MAX_SDP_LENGTH) {
        return [{ do: "notice", event: "Ignoring a bad session description", fields: { peer } }];
      }
      return message.type === "offer" ? this.offered(peer, description.sdp, now) : this.answered(peer, description.sdp);
    }
    return this.remoteCandidate(peer, text(message.payload), now);
  }

  negotiating() {
    let count = 0;
    for (const link of this.links.values()) if (!link.connected) count++;
    return count;
  }

  /** A flood of introductions (fresh ids cost nothing) waits for negotiation slots, the
   * newest kept: a member that just joined is among them, the flood's oldest are dropped. */
  introduced(peer, now) {
    const old = this.byPeer.get(peer);
    if (old && now - old.created < REINTRODUCTION_GUARD) return [];
    if (old?.connected) {
      // A member that reconnected to the signaler introduces itself again under the same id:
      // keep the working connection; offer only if it is gone a timeout later.
      if (this.recheck.size < MAX_DEFERRED || this.recheck.has(peer)) this.recheck.set(peer, now + this.timeout);
      return [];
    }
    if (this.negotiating() >= MAX_NEGOTIATING) {
      this.deferred.delete(peer);
      this.deferred.set(peer, true);
      if (this.deferred.size > MAX_DEFERRED) this.deferred.delete(this.deferred.keys().next().value);
      return [];
    }
    this.deferred.delete(peer);
    const actions = old ? this.closeLink(old) : [];
    const link = this.open(peer, true, now);
    return [...actions, { do: "open", link: link.number, peer, initiator: true }];
  }

  offered(peer, sdp, now) {
    const old = this.byPeer.get(peer);
    if (!old && this.negotiating() >= MAX_NEGOTIATING) {
      return [{ do: "notice", event: "Too many negotiations: ignoring an offer", fields: { peer } }];
    }
    this.deferred.delete(peer);
    // An offer replaces whatever we had with that member (as the Go peers do).
    const actions = old ? this.closeLink(old) : [];
    const link = this.open(peer, false, now);
    link.remoteDescribed = true;
    actions.push({ do: "open", link: link.number, peer, initiator: false });
    actions.push({ do: "answer", link: link.number, sdp });
    for (const candidate of this.early.get(peer)?.candidates ?? []) {
      actions.push({ do: "candidate", link: link.number, candidate });
    }
    this.early.delete(peer);
    return actions;
  }

  answered(peer, sdp) {
    const link = this.byPeer.get(peer);
    if (!link || !link.initiator || link.remoteDescribed) {
      return [{ do: "notice", event: "Ignoring an answer we did not ask for", fields: { peer } }];
    }
    link.remoteDescribed = true;
    const actions = [{ do: "complete", link: link.number, sdp }];
    for (const candidate of link.pending.splice(0)) {
      actions.push({ do: "candidate", link: link.number, candidate });
    }
    return actions;
  }

  remoteCandidate(peer, candidate, now) {
    if (candidate.length > MAX_CANDIDATE_LENGTH) return [];
    const link = this.byPeer.get(peer);
    if (link && link.remoteDescribed) return [{ do: "candidate", link: link.number, candidate }];
    if (link) {
      if (link.pending.length < MAX_EARLY_CANDIDATES) link.pending.push(candidate);
      return [];
    }
    // Before the offer they belong to: keep a few, for a few senders.
    if (!this.early.has(peer) && this.early.size >= MAX_EARLY_SENDERS) return [];
    const early = this.early.get(peer) ?? { at: now, candidates: [] };
    if (early.candidates.length < MAX_EARLY_CANDIDATES) early.candidates.push(candidate);
    this.early.set(peer, early);
    return [];
  }

  /** Our offer or answer for `link` is ready. Candidates held for it go out after it. */
  localDescription(number, type, sdp) {
    const link = this.links.get(number);
    if (!link) return [];
    const actions = [this.exchange(link, type, encodeDescription(type, sdp))];
    for (const candidate of link.held.splice(0)) actions.push(this.exchange(link, "candidate", bytes(candidate)));
    link.described = true;
    return actions;
  }

  localCandidate(number, candidate) {
    const link = this.links.get(number);
    if (!link) return [];
    if (!link.described) {
      link.held.push(candidate);
      return [];
    }
    return [this.exchange(link, "candidate", bytes(candidate))];
  }

  connected(number) {
    const link = this.links.get(number);
    if (link) link.connected = true;
    return [];
  }

  /** The connection failed or closed: forget it. */
  closed(number) {
    const link = this.links.get(number);
    return link ? this.closeLink(link) : [];
  }

  /** Close links that did not connect within `timeout`; offer to deferred newcomers
   * (newest first) as slots free up. Early candidates nobody offered for expire too. */
  tick(now) {
    const actions = [];
    for (const link of [...this.links.values()]) {
      if (!link.connected && now - link.created > this.timeout) {
        actions.push({ do: "notice", event: "Connection not established in time", fields: { peer: link.peer } });
        actions.push(...this.closeLink(link));
      }
    }
    for (const [peer, at] of [...this.recheck]) {
      if (now < at) continue;
      this.recheck.delete(peer);
      if (!this.byPeer.get(peer)?.connected) actions.push(...this.introduced(peer, now));
    }
    for (const peer of [...this.deferred.keys()].reverse()) {
      if (this.negotiating() >= MAX_NEGOTIATING) break;
      this.deferred.delete(peer);
      actions.push(...this.introduced(peer, now));
    }
    for (const [peer, { at }] of [...this.early]) if (now - at > this.timeout) this.early.delete(peer);
    return actions;
  }

  open(peer, initiator, now) {
    const link = {
      number: this.next++,
      peer,
      initiator,
      created: now,
      remoteDescribed: false,
      described: false,
      connected: false,
      held: [],
      pending: [],
    };
    this.links.set(link.number, link);
    this.byPeer.set(peer, link);
    return link;
  }

  closeLink(link) {
    this.links.delete(link.number);
    if (this.byPeer.get(link.peer) === link) this.byPeer.delete(link.peer);
    return [{ do: "close", link: link.number }];
  }

  exchange(link, type, payload) {
    return { do: "send", message: { type, from: this.id, to: link.peer, payload } };
  }
}
