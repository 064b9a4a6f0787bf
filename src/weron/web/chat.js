// The chat channel protocol (docs/wire-protocol.md#channels-and-apps): every message is one or more
// lines of text; what peers send is shown as `peer@channel: text`, arrivals as `+peer@channel`,
// departures as `-peer@channel`. Pure: app.js puts the lines on the page.

export const ID_CHANNEL = "weron/chat/id";
export const DEFAULT_CHANNEL = "weron/chat/primary";

/** Names and text come from peers: control characters are shown, never obeyed. */
export function escapeControls(text) {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

export const who = (peer, label) => `${escapeControls(peer)}@${escapeControls(label)}`;
export const joinedLine = (peer, label) => `+${who(peer, label)}`;
export const leftLine = (peer, label) => `-${who(peer, label)}`;

/** The lines to show for one message from `peer` on `label`. */
export function messageLines(peer, label, data) {
  const text = new TextDecoder().decode(data);
  return text
    .split(/\r\n|\n|\r/)
    .filter((line, index, all) => line !== "" || index < all.length - 1)
    .map((line) => `${who(peer, label)}: ${escapeControls(line)}`);
}

/** What goes on the wire for a typed line (as `weron chat` sends it: one line, newline-ended). */
export const encodeLine = (line) => new TextEncoder().encode(line + "\n");

/** Channel labels from a comma-separated field. */
export const parseChannels = (text) =>
  text
    .split(",")
    .map((label) => label.trim())
    .filter(Boolean);
