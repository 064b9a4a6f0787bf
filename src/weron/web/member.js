// One member of a community in the browser: the signaler connection, a peer connection per
// member (the decisions are mesh.js's, the names names.js's) and the data channels handed to
// the app once opened. The browser's counterpart of weron.peers.adapter and .named, as one
// thin layer of I/O around the pure cores.

import { Envelope } from "./envelope.js";
import { SignalingMessageError, decodeMessage, encodeMessage } from "./messages.js";
import { Mesh } from "./mesh.js";
import * as names from "./names.js";

const seconds = () => performance.now() / 1000;

/** The signaler the page came from: its URL with ws(s), up to and without `web/` (a signaler
 * behind a reverse proxy under a path prefix keeps it). */
export function defaultSignaler(location) {
  const path = location.pathname.replace(/web\/?[^/]*$/, "");
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
}

export function joinUrl(signaler, community, password) {
  const url = new URL(signaler);
  url.searchParams.set("community", community);
  url.searchParams.set("password", password);
  return url.toString();
}

/** Messages of one data channel, as a queue the app awaits. */
export class Channel {
  constructor(channel) {
    this.channel = channel;
    this.queue = [];
    this.waiting = null;
    this.closed = false;
    channel.binaryType = "arraybuffer";
    channel.onmessage = (event) => {
      const data = typeof event.data === "string" ? new TextEncoder().encode(event.data) : new Uint8Array(event.data);
      if (this.waiting) {
        this.waiting.resolve(data);
        this.waiting = null;
      } else this.queue.push(data);
    };
    this.done = new Promise((resolve) => {
      channel.addEventListener("close", () => {
        this.closed = true;
        this.waiting?.reject(new Error("channel closed"));
        resolve();
      });
    });
  }

  get label() {
    return this.channel.label;
  }

  /** The next message; rejects when the channel closes or after `timeout` seconds. */
  receive(timeout = Infinity) {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    if (this.closed) return Promise.reject(new Error("channel closed"));
    return new Promise((resolve, reject) => {
      const timer = Number.isFinite(timeout)
        ? setTimeout(() => {
            this.waiting = null;
            reject(new Error("timeout"));
          }, timeout * 1000)
        : null;
      this.waiting = {
        resolve: (data) => (clearTimeout(timer), resolve(data)),
        reject: (error) => (clearTimeout(timer), reject(error)),
      };
    });
  }

  send(data) {
    if (this.channel.readyState === "open") this.channel.send(data);
  }

  get bufferedAmount() {
    return this.channel.bufferedAmount;
  }

  /** Wait until the browser's send buffer is below `low` bytes (flow control). */
  async drained(low) {
    if (this.channel.bufferedAmount <= low) return;
    this.channel.bufferedAmountLowThreshold = low;
    await new Promise((resolve) => {
      const done = () => {
        this.channel.removeEventListener("bufferedamountlow", done);
        this.channel.removeEventListener("close", done);
        resolve();
      };
      this.channel.addEventListener("bufferedamountlow", done);
      this.channel.addEventListener("close", done);
    });
  }

  close() {
    this.channel.close();
  }
}

/**
 * options: {signaler, community, password, key, channels, timeout (s), iceServers,
 *           names (claim one on idChannel; omit for the utilities), idChannel, kicks (s)}
 * callbacks: onpeer({peer, label, channel: Channel}), onname(name), onstatus(text), onlog(event, fields)
 */
export class Member {
  constructor(options) {
    this.options = { timeout: 10, kicks: 5, iceServers: [], idChannel: "weron/chat/id", ...options };
    this.labels = this.options.channels.filter((label) => label.trim());
    this.named = Array.isArray(this.options.names);
    if (this.named) this.labels = [this.options.idChannel, ...this.labels];
    this.mesh = new Mesh(crypto.randomUUID(), this.options.timeout);
    this.connections = new Map(); // link -> {pc, peer, channels: Channel[]}
    this.sending = Promise.resolve();
    this.receiving = Promise.resolve();
    this.closed = false;
    this.onpeer = () => {};
    this.onname = () => {};
    this.onstatus = () => {};
    this.onlog = () => {};
    if (this.named) {
      const contest = Math.max(this.options.timeout, 15) + this.options.kicks;
      this.negotiation = new names.NameNegotiation(this.options.names, BigInt(Date.now()) * 1000000n, contest);
      this.views = new Map(); // link -> {view, id: Channel, name}
      this.held = new Map(); // link -> Channels waiting for names
      this.claimTimer = null;
    }
  }

  async open() {
    this.envelope = await Envelope.create(this.options.key);
    this.ticker = setInterval(() => this.run(this.mesh.tick(seconds())), 1000);
    this.connect();
  }

  connect() {
    if (this.closed) return;
    const { signaler, community, password } = this.options;
    const socket = new WebSocket(joinUrl(signaler, community, password));
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.onopen = () => {
      this.onstatus(`connected to ${signaler}`);
      this.onlog("Connected to signaler", { id: this.mesh.id });
      this.run(this.mesh.signalerConnected());
      if (this.named && this.negotiation.name === null) this.restartClaim(this.options.timeout + this.options.kicks);
    };
    // WebCrypto may finish out of order: keep messages in order both ways (a Go peer drops a
    // candidate that arrives before the offer it belongs to).
    socket.onmessage = (event) => {
      this.receiving = this.receiving
        .then(() => this.relayed(event.data))
        .catch((error) => this.onlog("Could not handle a message", { reason: error.message }));
    };
    let opened = false;
    socket.addEventListener("open", () => (opened = true));
    socket.onclose = (event) => {
      if (this.closed) return;
      // A browser hides why a join failed (401, 403 and no answer all read as code 1006).
      this.onstatus(
        opened
          ? `signaler connection lost (${event.code}${event.reason ? ": " + event.reason : ""}): ` +
              `reconnecting in ${this.options.timeout} s`
          : `could not join at ${signaler} (unreachable, wrong password, or this page's origin ` +
              `is not allowed there): retrying in ${this.options.timeout} s`,
      );
      setTimeout(() => this.connect(), this.options.timeout * 1000);
    };
  }

  async relayed(data) {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : new Uint8Array(data);
    let message;
    try {
      message = decodeMessage(await this.envelope.open(bytes));
    } catch (error) {
      if (!(error instanceof SignalingMessageError)) this.onlog("Ignoring a message we cannot open", { reason: error.message });
      else this.onlog("Ignoring a bad signaling message", { reason: error.message });
      return;
    }
    this.run(this.mesh.receive(message, seconds()));
  }

  send(message) {
    this.sending = this.sending
      .then(async () => {
        const sealed = await this.envelope.seal(encodeMessage(message));
        if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(sealed);
      })
      .catch((error) => this.onlog("Could not send a message", { reason: error.message }));
  }

  /** Carry out the mesh's actions, in order per link. */
  run(actions) {
    for (const action of actions) {
      const entry = this.connections.get(action.link);
      switch (action.do) {
        case "send":
          this.send(action.message);
          break;
        case "notice":
          this.onlog(action.event, action.fields);
          break;
        case "open":
          this.openConnection(action.link, action.peer, action.initiator);
          break;
        case "close":
          if (entry) this.closeConnection(action.link);
          break;
        default:
          if (entry) entry.chain = entry.chain.then(() => this.describe(entry, action)).catch((error) => {
            this.onlog("Negotiation failed", { peer: entry.peer, reason: error.message });
            this.run(this.mesh.closed(action.link));
          });
      }
    }
  }

  async describe(entry, action) {
    const { pc } = entry;
    if (action.do === "answer") {
      await pc.setRemoteDescription({ type: "offer", sdp: action.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      this.run(this.mesh.localDescription(action.link, "answer", pc.localDescription.sdp));
    } else if (action.do === "complete") {
      await pc.setRemoteDescription({ type: "answer", sdp: action.sdp });
    } else if (action.do === "candidate") {
      const line = action.candidate.startsWith("candidate:") ? action.candidate : `candidate:${action.candidate}`;
      await pc.addIceCandidate({ candidate: line, sdpMLineIndex: 0 }).catch((error) => {
        this.onlog("Ignoring a candidate", { peer: entry.peer, reason: error.message });
      });
    }
  }

  openConnection(link, peer, initiator) {
    const pc = new RTCPeerConnection({ iceServers: this.options.iceServers });
    const entry = { pc, peer, channels: [], chain: Promise.resolve() };
    this.connections.set(link, entry);
    pc.onicecandidate = (event) => {
      const line = event.candidate?.candidate;
      if (!line) return;
      this.onlog("Sending candidate", { peer, candidate: line });
      this.run(this.mesh.localCandidate(link, line));
    };
    pc.onconnectionstatechange = () => {
      const state = pc.connectionState;
      if (state === "connected") this.run(this.mesh.connected(link));
      if (state === "failed" || state === "closed") this.run(this.mesh.closed(link));
    };
    pc.ondatachannel = (event) => this.channelOpened(link, event.channel);
    if (initiator) {
      for (const label of this.labels) this.channelOpened(link, pc.createDataChannel(label));
      entry.chain = entry.chain
        .then(async () => {
          await pc.setLocalDescription(await pc.createOffer());
          this.run(this.mesh.localDescription(link, "offer", pc.localDescription.sdp));
        })
        .catch((error) => this.onlog("Could not offer", { peer, reason: error.message }));
    }
  }

  closeConnection(link) {
    const entry = this.connections.get(link);
    this.connections.delete(link);
    if (this.named) this.forgetNames(link);
    for (const channel of entry.channels) channel.close();
    entry.pc.close();
  }

  channelOpened(link, raw) {
    const entry = this.connections.get(link);
    if (!entry || !this.labels.includes(raw.label)) return;
    const channel = new Channel(raw);
    entry.channels.push(channel);
    const ready = () => {
      if (!this.connections.has(link)) return;
      channel.maxMessageSize = entry.pc.sctp?.maxMessageSize ?? Infinity; // known once open
      if (!this.named) this.onpeer({ peer: entry.peer, label: channel.label, channel });
      else if (channel.label === this.options.idChannel) this.negotiate(link, channel);
      else {
        this.held.set(link, [...(this.held.get(link) ?? []), channel]);
        this.release(link);
      }
    };
    if (raw.readyState === "open") ready();
    else raw.addEventListener("open", ready, { once: true });
    channel.done.then(() => {
      // A connection whose channels all closed is gone (the peer left).
      if (entry.channels.every((c) => c.closed)) this.run(this.mesh.closed(link));
    });
  }

  // Names (only with `names`): the rules are names.js's; the timers are here.

  restartClaim(delay = this.options.kicks) {
    clearTimeout(this.claimTimer);
    this.claimDue = seconds() + delay;
    this.claimTimer = setTimeout(() => this.claim(), delay * 1000);
  }

  /** Not while connections are still negotiating (a member we are not connected to yet can
   * neither make us back off nor kick us): wait for them, up to max(timeout, 15 s) longer, then
   * give their members `kicks` to speak (as weron.peers.named). */
  claim() {
    const inTime = seconds() < this.claimDue + Math.max(this.options.timeout, 15);
    if (this.mesh.negotiating() > 0 && inTime) {
      this.waitedForConnections = true;
      this.claimTimer = setTimeout(() => this.claim(), Math.min(250, this.options.kicks * 1000));
      return;
    }
    if (this.waitedForConnections && inTime) {
      this.waitedForConnections = false;
      this.restartClaim();
      return;
    }
    let name;
    try {
      name = this.negotiation.claim(seconds());
    } catch (error) {
      this.onstatus(error.message);
      this.close();
      return;
    }
    this.onname(name);
    for (const { id } of this.views.values()) this.sendNames(id, [names.claimed(name)]);
    for (const link of this.held.keys()) this.release(link);
  }

  sendNames(channel, messages) {
    for (const message of messages) channel.send(names.encode(message));
  }

  async negotiate(link, channel) {
    const state = { view: new names.PeerNames(), id: channel, name: null };
    this.views.set(link, state);
    this.sendNames(channel, this.negotiation.greetings());
    const keepalive = setInterval(() => this.sendNames(channel, [names.keepalive()]), (this.options.timeout / 4) * 1000);
    let alive = false;
    try {
      while (true) {
        const data = await channel.receive(alive ? this.options.timeout : Infinity);
        let messages;
        try {
          messages = names.decode(data);
        } catch (error) {
          this.onlog("Ignoring id channel message", { reason: error.message });
          continue;
        }
        for (const message of messages) {
          let reaction;
          try {
            reaction = this.negotiation.receive(message, state.view, seconds());
          } catch (error) {
            this.onlog("Ignoring id channel message", { reason: error.message });
            continue;
          }
          this.sendNames(channel, reaction.replies);
          alive ||= reaction.alive;
          if (reaction.backOff) {
            clearTimeout(this.claimTimer);
            setTimeout(() => {
              this.sendNames(channel, this.negotiation.greetings());
              this.restartClaim();
            }, this.options.kicks * 1000);
          }
          if (reaction.gaveUp !== null) {
            this.onstatus(`${reaction.gaveUp} was claimed by an older member at the same time: claiming another`);
            for (const { id } of this.views.values()) this.sendNames(id, this.negotiation.greetings());
            this.restartClaim();
          }
          if (reaction.peerName !== null && state.name === null) {
            state.name = reaction.peerName;
            this.release(link);
          } else if (reaction.peerName !== null && reaction.peerName !== state.name) {
            // It gave its name up to an older member: its channels went out under the old
            // one. Close; it offers again and comes back under the new name.
            this.onlog("Peer changed its name", { id: reaction.peerName, previous: state.name });
            this.run(this.mesh.closed(link));
            return;
          }
        }
      }
    } catch (error) {
      if (error.message === "timeout") {
        this.onlog("Peer stopped answering", { peer: state.name });
        this.run(this.mesh.closed(link));
      }
    } finally {
      clearInterval(keepalive);
    }
  }

  /** Hand a peer's data channels to the app once both names are known. */
  release(link) {
    const state = this.views.get(link);
    if (!state || state.name === null || this.negotiation.name === null) return;
    for (const channel of this.held.get(link) ?? []) {
      this.onpeer({ peer: state.name, label: channel.label, channel });
    }
    this.held.delete(link);
  }

  forgetNames(link) {
    this.views.delete(link);
    this.held.delete(link);
  }

  close() {
    this.closed = true;
    clearInterval(this.ticker);
    if (this.named) clearTimeout(this.claimTimer);
    for (const link of [...this.connections.keys()]) this.closeConnection(link);
    this.socket?.close();
  }
}
