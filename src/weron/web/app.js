// The page: reads the form, starts a Member per tool (chat, latency, throughput — as the CLI
// runs one process per command) and shows what they report. All protocol work is elsewhere.

import { ID_CHANNEL, encodeLine, joinedLine, leftLine, messageLines, parseChannels } from "./chat.js";
import { parseIceServers } from "./ice.js";
import { Member, defaultSignaler, joinUrl } from "./member.js";
import { Plot } from "./plot.js";
import { LatencyTotals, ThroughputTotals, goDuration } from "./report.js";
import { LATENCY_CHANNEL, THROUGHPUT_CHANNEL, measureLatency, measureThroughput } from "./utilities.js";

const $ = (id) => document.getElementById(id);

const KEPT_LINES = 500; // a log that runs for hours keeps its newest lines

function append(pre, line) {
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.append(line + "\n");
  while (pre.childNodes.length > KEPT_LINES) pre.firstChild.remove();
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

/** The community fields, shared by the three tools; null (and a status line) when incomplete. */
function communityOptions(status) {
  const options = {
    signaler: $("signaler").value.trim(),
    community: $("community").value.trim(),
    password: $("password").value,
    key: $("key").value,
    timeout: Number($("timeout").value) || 10,
  };
  for (const field of ["signaler", "community", "password", "key"]) {
    if (!options[field]) {
      status.textContent = `fill in the ${field} first`;
      return null;
    }
  }
  try {
    if (!/^wss?:$/.test(new URL(joinUrl(options.signaler, "c", "p")).protocol)) throw new Error();
  } catch {
    status.textContent = "the signaler must be a ws:// or wss:// URL";
    return null;
  }
  try {
    options.iceServers = parseIceServers($("ice").value);
  } catch (error) {
    status.textContent = error.message;
    return null;
  }
  return options;
}

/** Log lines of a tool go to the console (debug level), as text: the tests read them. */
function logTo(status) {
  return (event, fields = {}) => console.debug(`${status.id.split("-")[0]}: ${event} ${JSON.stringify(fields)}`);
}

// Chat

let chat = null;
const peers = new Map(); // "peer@label" -> Channel
let waiting = new Map(); // label -> lines typed while nobody was connected on it

function setChatJoined(joined) {
  $("chat-join").disabled = joined;
  $("chat-leave").disabled = !joined;
}

$("chat-join").addEventListener("click", async () => {
  const status = $("chat-status");
  const options = communityOptions(status);
  const names = parseChannels($("names").value);
  const channels = parseChannels($("channels").value);
  if (!options) return;
  if (!names.length || !channels.length) {
    status.textContent = "give at least one name and one channel";
    return;
  }
  setChatJoined(true);
  chat = new Member({ ...options, names, channels, idChannel: ID_CHANNEL });
  chat.onstatus = (text) => (status.textContent = text);
  chat.onlog = logTo(status);
  chat.onname = (name) => {
    status.textContent = `joined as ${name}`;
    const member = chat;
    setTimeout(() => {
      // A wrong key is silence, not an error: say so, as weron chat does.
      if (chat === member && peers.size === 0) {
        status.textContent =
          `joined as ${name}; nobody here ${options.timeout} s after joining: members with ` +
          "another key (or community) cannot see each other";
      }
    }, options.timeout * 1000);
    append($("chat-log"), `${name}!`);
    $("chat-line").disabled = $("chat-send").disabled = false;
    $("chat-line").focus();
  };
  chat.onpeer = async ({ peer, label, channel }) => {
    const key = `${peer}@${label}`;
    const replacing = peers.has(key);
    peers.set(key, channel);
    if (!replacing) append($("chat-log"), joinedLine(peer, label));
    const lines = waiting.get(label) ?? [];
    waiting.delete(label);
    for (const line of lines) channel.send(encodeLine(line));
    if (lines.length) $("chat-status").textContent = `sent ${lines.length} waiting line(s) to ${peer}@${label}`;
    try {
      while (true) for (const line of messageLines(peer, label, await channel.receive())) append($("chat-log"), line);
    } catch {
      if (peers.get(key) === channel) {
        peers.delete(key);
        append($("chat-log"), leftLine(peer, label));
      }
    }
  };
  status.textContent = `claiming a name (takes ${options.timeout + 5} s)…`;
  append($("chat-log"), `.${options.signaler}`);
  await chat.open();
});

$("chat-leave").addEventListener("click", () => {
  chat?.close();
  chat = null;
  peers.clear();
  waiting = new Map();
  setChatJoined(false);
  $("chat-line").disabled = $("chat-send").disabled = true;
  $("chat-status").textContent = "not joined";
});

$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const line = $("chat-line").value;
  if (!line || !chat) return;
  if (peers.size === 0) {
    // As weron chat: lines typed while alone wait, on each channel, for the first peer there.
    $("chat-status").textContent = "nobody connected yet: lines wait for the first peer that joins";
    for (const label of chat.labels.slice(1)) waiting.set(label, [...(waiting.get(label) ?? []), line]);
  }
  for (const channel of peers.values()) channel.send(encodeLine(line));
  append($("chat-log"), `${chat.negotiation.name}> ${line}`);
  $("chat-line").value = "";
});

// Utilities: one member each, measuring against every server that connects.

function utility({ name, channel, settings, measure, plot, point, totals }) {
  let member = null;
  let stop = null;
  let total = null;
  const status = $(`${name}-status`);
  const finish = () => {
    if (!member) return;
    stop.stopped = true;
    member.close();
    member = null;
    $(`${name}-start`).disabled = false;
    $(`${name}-stop`).disabled = true;
    $(`${name}-totals`).textContent = total.lines().join("\n");
    status.textContent = "stopped";
  };
  $(`${name}-start`).addEventListener("click", async () => {
    const options = communityOptions(status);
    if (!options) return;
    $(`${name}-start`).disabled = true;
    $(`${name}-stop`).disabled = false;
    $(`${name}-log`).textContent = $(`${name}-totals`).textContent = "";
    plot.clear();
    stop = { stopped: false };
    total = totals();
    const started = performance.now();
    member = new Member({ ...options, channels: [channel] });
    member.onstatus = (text) => (status.textContent = text);
    member.onlog = logTo(status);
    member.onpeer = async ({ peer, channel: conn }) => {
      status.textContent = `measuring against ${peer}`;
      try {
        await measure(conn, { ...settings(), timeout: options.timeout }, (sample) => {
          append($(`${name}-log`), sample.line);
          plot.add((performance.now() - started) / 1000, point(sample));
        }, stop, total);
      } catch (error) {
        if (!stop.stopped) status.textContent = `${peer}: ${error.message}`;
      }
    };
    status.textContent = "waiting for a server…";
    const waiting = member;
    setTimeout(() => {
      if (member === waiting && status.textContent.startsWith("connected to")) {
        status.textContent = `no server here ${2 * options.timeout} s after joining: is one running in this community, with this key?`;
      }
    }, 2 * options.timeout * 1000);
    await member.open();
  });
  $(`${name}-stop`).addEventListener("click", finish);
}

utility({
  name: "latency",
  channel: LATENCY_CHANNEL,
  settings: () => ({ packetLength: Number($("latency-length").value), pause: Number($("latency-pause").value) }),
  measure: measureLatency,
  plot: new Plot($("latency-plot"), { unit: "round trip", format: (s) => goDuration(Math.round(s * 1e7) / 1e7) }),
  point: (sample) => sample.seconds,
  totals: () => new LatencyTotals(),
});

utility({
  name: "throughput",
  channel: THROUGHPUT_CHANNEL,
  settings: () => ({ packetLength: Number($("throughput-length").value), packetCount: Number($("throughput-count").value) }),
  measure: measureThroughput,
  plot: new Plot($("throughput-plot"), { unit: "MB/s", format: (v) => String(Math.round(v * 1000) / 1000), color: "#059669" }),
  point: (sample) => sample.speed,
  totals: () => new ThroughputTotals(),
});

$("join").addEventListener("submit", (event) => event.preventDefault());
$("signaler").value = defaultSignaler(location);
// Fields can be filled from the query string (?community=…&names=…): links to a community.
// Not the password or key: secrets in links end up in histories and logs.
const SECRET = new Set(["password", "key"]);
for (const [field, value] of new URLSearchParams(location.search)) {
  if (!SECRET.has(field) && $(field) instanceof HTMLInputElement) $(field).value = value;
}
