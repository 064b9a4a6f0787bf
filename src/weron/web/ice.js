// ICE servers in the CLI's --ice format (docs/wire-protocol.md): comma-separated
// `stun:host:port` or `username:credential@turn:host:port[?transport=udp|tcp]`.

export function parseIceServers(text) {
  return text
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean)
    .map((item) => {
      const at = item.lastIndexOf("@");
      if (at < 0) return { urls: item };
      const credentials = item.slice(0, at);
      const colon = credentials.indexOf(":");
      if (colon < 0) throw new Error(`ICE server ${item}: expected username:credential@turn:host:port`);
      return { urls: item.slice(at + 1), username: credentials.slice(0, colon), credential: credentials.slice(colon + 1) };
    });
}
