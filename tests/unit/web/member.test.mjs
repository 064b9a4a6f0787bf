import assert from "node:assert/strict";
import { test } from "node:test";

import { defaultSignaler, joinUrl } from "../../../src/weron/web/member.js";

test("the page joins the signaler it came from, under its path prefix", () => {
  const at = (href) => defaultSignaler(new URL(href));
  assert.equal(at("http://localhost:1337/web/"), "ws://localhost:1337/");
  assert.equal(at("http://localhost:1337/web/index.html?community=x"), "ws://localhost:1337/");
  assert.equal(at("https://example.org/weron/web/"), "wss://example.org/weron/");
});

test("the join URL carries community and password, encoded", () => {
  assert.equal(joinUrl("ws://h:1/", "my room", "p&w"), "ws://h:1/?community=my+room&password=p%26w");
});
