// The latency and throughput channel protocols (docs/wire-protocol.md#channels-and-apps), against
// any channel with send/receive/drained (member.js's Channel, or a fake in the node tests):
// no DOM, the caller shows the results.

import { LatencyTotals, ThroughputTotals, packetLine } from "./report.js";

export const LATENCY_CHANNEL = "weron/latency/primary";
export const THROUGHPUT_CHANNEL = "weron/throughput/primary";
export const ACK_LENGTH = 100;

const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

/** As the CLI: a packet the connection cannot carry is a clear error, not a closed channel. */
function checkLength(channel, packetLength) {
  const maximum = channel.maxMessageSize ?? Infinity;
  if (packetLength > maximum) {
    throw new Error(`packet length ${packetLength} is larger than the largest message this connection can carry (${maximum} bytes)`);
  }
}

function randomBytes(length) {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  return bytes;
}

/**
 * Ping until `stop.stopped`: send `packetLength` random bytes, time the echo, sleep `pause`.
 * onPacket({seconds, line}) per round trip. Returns the totals.
 */
export async function measureLatency(channel, { packetLength = 128, pause = 1, timeout = 10 }, onPacket, stop, totals = new LatencyTotals()) {
  checkLength(channel, packetLength);
  while (!stop.stopped) {
    const payload = randomBytes(packetLength);
    const started = performance.now();
    channel.send(payload);
    let reply;
    try {
      reply = await channel.receive(timeout);
    } catch (error) {
      throw new Error(error.message === "timeout" ? "no echo within the timeout: is the server gone?" : error.message);
    }
    const seconds = (performance.now() - started) / 1000;
    if (reply.length !== payload.length) throw new Error(`echo of ${reply.length} bytes for ${payload.length}`);
    totals.add(seconds);
    onPacket({ seconds, line: packetLine(payload.length, seconds) });
    if (!stop.stopped) await sleep(pause);
  }
  return totals;
}

/**
 * Send batches of `packetCount` messages of `packetLength` random bytes until `stop.stopped`;
 * the server acknowledges each batch with 100 bytes. onBatch({speed, line}) per batch.
 */
export async function measureThroughput(channel, { packetLength = 50000, packetCount = 1000, timeout = 10 }, onBatch, stop, totals = new ThroughputTotals()) {
  checkLength(channel, packetLength);
  const payload = randomBytes(packetLength); // drawn once: fresh bytes would measure the RNG
  // Keep a few MB queued (a long path needs them in flight) but far below the 16 MB at which
  // Chromium closes a data channel whose buffer overflows.
  const high = Math.max(4 << 20, packetLength * 16);
  while (!stop.stopped) {
    const started = performance.now();
    for (let i = 0; i < packetCount; i++) {
      if (channel.queue?.length) {
        throw new Error(
          `the server acknowledged a batch before all our ${packetCount} messages were sent: its packet count is smaller`,
        );
      }
      // Hysteresis: refill in bursts once half the queue has gone, not a message per event.
      if (channel.bufferedAmount > high) await channel.drained(high / 2);
      channel.send(payload);
    }
    try {
      await channel.receive(timeout);
    } catch (error) {
      throw new Error(
        error.message === "timeout"
          ? `no acknowledgement ${timeout}s after our ${packetCount} messages: the server's packet count is larger, or it is gone`
          : error.message,
      );
    }
    const written = packetLength * packetCount;
    const seconds = (performance.now() - started) / 1000;
    const line = totals.add(written, seconds);
    onBatch({ speed: totals.speeds.at(-1), line });
  }
  return totals;
}
