// Drives Debian's Chromium for the browser tests (tests/e2e/browser.py talks to it): one JSON
// command per line on stdin, one JSON reply per line on stdout. Pages are named by the test.
//   {"op": "open", "page": "a", "url": "..."}          {"op": "fill", "page", "selector", "value"}
//   {"op": "click", "page", "selector"}                 {"op": "text", "page", "selector"}
//   {"op": "wait_text", "page", "selector", "text", "lines", "timeout"}  (seconds; text and/or
//                                                        at least `lines` lines)
//   {"op": "screenshot", "page", "path"}                {"op": "console", "page"}
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const [executablePath, userDataDir, ...flags] = process.argv.slice(2);
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  viewport: { width: 1000, height: 1400 },
  args: flags, // tests/devtools.py's FLAGS, then tests/e2e/browser.py's own
});
const pages = new Map();
const consoles = new Map();

async function page(name) {
  if (!pages.has(name)) {
    const created = await context.newPage();
    consoles.set(name, []);
    created.on("console", (message) => consoles.get(name).push(`${message.type()}: ${message.text()}`));
    created.on("pageerror", (error) => consoles.get(name).push(`pageerror: ${error.message}`));
    pages.set(name, created);
  }
  return pages.get(name);
}

const operations = {
  async open({ page: name, url }) {
    const response = await (await page(name)).goto(url);
    return response ? response.status() : null;
  },
  async fill({ page: name, selector, value }) {
    await (await page(name)).fill(selector, value);
  },
  async click({ page: name, selector }) {
    await (await page(name)).click(selector);
  },
  async text({ page: name, selector }) {
    return (await page(name)).locator(selector).innerText();
  },
  async wait_text({ page: name, selector, text = "", lines = 0, timeout }) {
    const target = await page(name);
    await target.waitForFunction(
      ([sel, want, count]) => {
        const shown = document.querySelector(sel)?.innerText ?? "";
        return shown.includes(want) && shown.split("\n").filter(Boolean).length >= count;
      },
      [selector, text, lines],
      { timeout: timeout * 1000, polling: 200 },
    );
    return target.locator(selector).innerText();
  },
  async screenshot({ page: name, path }) {
    await (await page(name)).screenshot({ path, fullPage: true });
  },
  async console({ page: name }) {
    return consoles.get(name) ?? [];
  },
};

const reply = (document) => process.stdout.write(JSON.stringify(document) + "\n");
reply({ ok: true, value: "ready" });
for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line);
  try {
    reply({ ok: true, value: (await operations[command.op](command)) ?? null });
  } catch (error) {
    reply({ ok: false, error: error.message });
  }
}
await context.close();
