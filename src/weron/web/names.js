// Name negotiation on the id channel (docs/wire-protocol.md#name-negotiation), the same rules as
// weron.peers.names: a state machine without I/O or timers. The caller feeds it messages
// and the time and sends its replies; timers live in member.js.

export const MAX_GIVE_UPS = 3;
export const MAX_TAKEN = 1024;

export class NameMessageError extends Error {}

export class AllNamesClaimedError extends Error {
  constructor() {
    super("all available names have been claimed");
  }
}

export const greeting = (names, timestamp) => ({
  type: "greeting",
  ids: Object.fromEntries([...names].map((name) => [name, {}])),
  timestamp,
});
export const kick = (id) => ({ type: "kick", id });
export const backoff = () => ({ type: "backoff" });
export const claimed = (id) => ({ type: "claimed", id });
export const keepalive = () => ({ type: "keepalive" });

/** One message per line, as Go's json.Encoder writes them. The timestamp is unix nanoseconds:
 * larger than a double holds exactly, so it is a BigInt written as a bare number. */
export function encode(message) {
  const text = JSON.stringify(message, (_, value) =>
    typeof value === "bigint" ? `\u0000${value}` : value,
  ).replace(/"\\u0000(\d+)"/g, "$1");
  return new TextEncoder().encode(text + "\n");
}

/** The end (exclusive) of the JSON value starting at `start`, by brackets and strings. */
function valueEnd(text, start) {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  throw new NameMessageError("id channel message is not JSON: unterminated value");
}

/** Every JSON object in one id-channel message (values written back to back). Timestamps are
 * read as BigInt so that two members' nanosecond clocks compare exactly. */
export function decode(bytes) {
  let text;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new NameMessageError("id channel message is not UTF-8");
  }
  const messages = [];
  let position = 0;
  while (true) {
    while (position < text.length && /\s/.test(text[position])) position++;
    if (position === text.length) return messages;
    if (text[position] !== "{") throw new NameMessageError("id channel message is not a JSON object");
    const end = valueEnd(text, position);
    const raw = text.slice(position, end).replace(/("timestamp"\s*:\s*)(-?\d+)/, '$1"\\u0000$2"');
    let value;
    try {
      value = JSON.parse(raw, (_, v) =>
        typeof v === "string" && v.startsWith("\u0000") ? BigInt(v.slice(1)) : v,
      );
    } catch (error) {
      throw new NameMessageError(`id channel message is not JSON: ${error.message}`);
    }
    if (typeof value.type !== "string") throw new NameMessageError("id channel message is not typed");
    messages.push(value);
    position = end;
  }
}

/** What one peer told us on its id channel (see weron.peers.names.PeerNames). */
export class PeerNames {
  claimed = null;
  olderRival = false;
  timestamp = null;
}

/** One member's claim; see weron.peers.names.NameNegotiation for the rules and why. */
export class NameNegotiation {
  constructor(names, timestamp, contest = 15) {
    this.timestamp = BigInt(timestamp);
    this.contest = contest;
    this.names = names.filter((name) => name.trim());
    this.taken = new Set();
    this.candidates = [...this.names];
    this.name = null;
    this.claimedAt = 0;
    this.giveUps = 0;
  }

  greetings() {
    if (this.name === null) return [greeting(this.candidates, this.timestamp)];
    return [greeting([this.name], this.timestamp), claimed(this.name)];
  }

  /** React to `message` from the peer whose state is `peer` (a PeerNames). */
  receive(message, peer, now) {
    const reaction = { replies: [], backOff: false, peerName: null, alive: false, gaveUp: null };
    switch (message.type) {
      case "greeting": {
        const { ids, timestamp } = message;
        if (typeof ids !== "object" || ids === null || typeof timestamp !== "bigint") {
          throw new NameMessageError("greeting without ids or timestamp");
        }
        peer.timestamp = timestamp;
        const theirs = Object.keys(ids);
        const rivals = theirs.some((name) => this.candidates.includes(name));
        peer.olderRival = rivals && timestamp < this.timestamp;
        if (rivals && this.name === null && this.timestamp < timestamp) {
          reaction.replies.push(backoff());
          return reaction;
        }
        if (this.name !== null && theirs.includes(this.name)) reaction.replies.push(kick(this.name));
        break;
      }
      case "kick":
        if (typeof message.id === "string" && message.id === peer.claimed) this.drop(message.id);
        break;
      case "backoff":
        reaction.backOff = this.name === null && peer.olderRival;
        break;
      case "keepalive":
        reaction.alive = true;
        break;
      case "claimed": {
        const name = message.id;
        if (typeof name !== "string") throw new NameMessageError("claimed without an id");
        reaction.peerName = peer.claimed = name;
        if (this.taken.size < MAX_TAKEN) this.taken.add(name);
        if (this.name === null) this.drop(name);
        else if (this.yieldsTo(name, peer, now)) {
          reaction.gaveUp = this.name;
          this.giveUps++;
          this.name = null;
          this.candidates = this.names.filter((candidate) => !this.taken.has(candidate));
        }
        break;
      }
      default:
        throw new NameMessageError(`unknown id channel message type ${String(message.type).slice(0, 32)}`);
    }
    return reaction;
  }

  drop(name) {
    this.candidates = this.candidates.filter((candidate) => candidate !== name);
  }

  yieldsTo(name, peer, now) {
    return (
      name === this.name &&
      peer.timestamp !== null &&
      peer.timestamp < this.timestamp &&
      now - this.claimedAt <= this.contest &&
      this.giveUps < MAX_GIVE_UPS
    );
  }

  /** Claim the first remaining candidate. */
  claim(now) {
    if (this.candidates.length === 0) throw new AllNamesClaimedError();
    this.name = this.candidates[0];
    this.candidates = [];
    this.claimedAt = now;
    return this.name;
  }
}
