import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { LatencyTotals, ThroughputTotals, goDuration, percentile } from "../../../src/weron/web/report.js";

test("Go durations as weron.apps.report.go_duration writes them", () => {
  const cases = process.env.WERON_DURATION_VECTORS
    ? JSON.parse(readFileSync(process.env.WERON_DURATION_VECTORS, "utf8"))
    : [[0.000110111, "110.111µs"], [0.510690403, "510.690403ms"], [3.364971672, "3.364971672s"], [0, "0s"]];
  for (const [seconds, expected] of cases) assert.equal(goDuration(seconds), expected, String(seconds));
});

test("nearest-rank percentiles", () => {
  assert.equal(percentile([1, 2, 3, 4], 0.5), 2);
  assert.equal(percentile([1, 2, 3, 4], 0.99), 4);
  assert.ok(Number.isNaN(percentile([], 0.5)));
});

test("latency totals read as the CLI's", () => {
  const totals = new LatencyTotals();
  for (const s of [0.000110111, 0.000386120, 0.0003]) totals.add(s);
  assert.deepEqual(totals.lines(), [
    "Average latency: 265.41µs (3 packets written) Min: 110.111µs Max: 386.12µs",
    "Percentiles: p50 300µs p90 386.12µs p99 386.12µs",
  ]);
});

test("throughput totals read as the CLI's", () => {
  const totals = new ThroughputTotals();
  assert.equal(totals.add(50e6, 0.5), "100.000 MB/s (800.000 Mb/s) (50 MB read in 500ms)");
  totals.add(50e6, 1);
  assert.deepEqual(totals.lines(), [
    "Average throughput: 66.667 MB/s (533.333 Mb/s) (100 MB written in 1.5s) Min: 50.000 MB/s Max: 100.000 MB/s",
  ]);
  assert.deepEqual(new ThroughputTotals().lines(), ["No batch was acknowledged: nothing measured"]);
});

test("plot grid steps are round and cover the largest value in four", async () => {
  const { gridStep } = await import("../../../src/weron/web/plot.js");
  assert.equal(gridStep(0.0036), 0.001);
  assert.equal(gridStep(7), 2);
  assert.equal(gridStep(120), 50);
  assert.equal(gridStep(0), 0.25);
});
