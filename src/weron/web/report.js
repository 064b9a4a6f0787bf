// Numbers as the CLI prints them (weron.apps.report): Go durations and nearest-rank percentiles.

function decimal(value, unit) {
  const whole = Math.floor(value / unit);
  const digits = String(value % unit)
    .padStart(String(unit).length - 1, "0")
    .replace(/0+$/, "");
  return digits ? `${whole}.${digits}` : String(whole);
}

/** Go's time.Duration.String(): 110.111µs, 510.690403ms, 3.364971672s. */
export function goDuration(seconds) {
  let ns = Math.round(seconds * 1e9);
  if (ns === 0) return "0s";
  const sign = ns < 0 ? "-" : "";
  ns = Math.abs(ns);
  if (ns < 1e3) return `${sign}${ns}ns`;
  if (ns < 1e6) return `${sign}${decimal(ns, 1e3)}µs`;
  if (ns < 1e9) return `${sign}${decimal(ns, 1e6)}ms`;
  const hours = Math.floor(ns / 3600e9);
  const minutes = Math.floor((ns % 3600e9) / 60e9);
  const rest = `${decimal(ns % 60e9, 1e9)}s`;
  if (hours) return `${sign}${hours}h${minutes}m${rest}`;
  if (minutes) return `${sign}${minutes}m${rest}`;
  return sign + rest;
}

/** Nearest-rank percentile of already sorted values. */
export function percentile(sorted, fraction) {
  if (sorted.length === 0) return NaN;
  const rank = Math.max(1, Math.ceil(fraction * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}

/** Round trips in seconds, summed up as `weron utility latency` prints them. */
export class LatencyTotals {
  roundTrips = [];

  add(seconds) {
    this.roundTrips.push(seconds);
  }

  summary() {
    if (this.roundTrips.length === 0) return null;
    const sorted = [...this.roundTrips].sort((a, b) => a - b);
    return {
      packets: sorted.length,
      average: sorted.reduce((sum, value) => sum + value, 0) / sorted.length,
      min: sorted[0],
      max: sorted[sorted.length - 1],
      p50: percentile(sorted, 0.5),
      p90: percentile(sorted, 0.9),
      p99: percentile(sorted, 0.99),
    };
  }

  lines() {
    const s = this.summary();
    if (!s) return ["No packet was echoed: nothing measured"];
    return [
      `Average latency: ${goDuration(s.average)} (${s.packets} packets written) ` +
        `Min: ${goDuration(s.min)} Max: ${goDuration(s.max)}`,
      `Percentiles: p50 ${goDuration(s.p50)} p90 ${goDuration(s.p90)} p99 ${goDuration(s.p99)}`,
    ];
  }
}

export const packetLine = (size, seconds) => `${size} B written and acknowledged in ${goDuration(seconds)}`;

/** Acknowledged batches, summed up as `weron utility throughput` prints them. */
export class ThroughputTotals {
  bytes = 0;
  seconds = 0;
  speeds = []; // MB/s per batch

  /** Count one batch; its line as the CLI prints it. */
  add(size, seconds) {
    seconds = Math.max(seconds, 1e-9);
    const speed = size / seconds / 1e6;
    this.bytes += size;
    this.seconds += seconds;
    this.speeds.push(speed);
    return `${speed.toFixed(3)} MB/s (${(speed * 8).toFixed(3)} Mb/s) (${Math.floor(size / 1e6)} MB read in ${goDuration(seconds)})`;
  }

  lines() {
    if (this.speeds.length === 0) return ["No batch was acknowledged: nothing measured"];
    const average = this.bytes / this.seconds / 1e6;
    return [
      `Average throughput: ${average.toFixed(3)} MB/s (${(average * 8).toFixed(3)} Mb/s) ` +
        `(${Math.floor(this.bytes / 1e6)} MB written in ${goDuration(this.seconds)}) ` +
        `Min: ${Math.min(...this.speeds).toFixed(3)} MB/s Max: ${Math.max(...this.speeds).toFixed(3)} MB/s`,
    ];
  }
}
