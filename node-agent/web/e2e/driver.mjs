// Drives Debian's Chromium with playwright-core for the explorer's browser tests and its
// benchmark. Commands arrive as JSON lines on stdin, answers leave as JSON lines on stdout,
// so the Rust test decides what happens when (e.g. a record is gossiped after the page loaded).
//
//   {"cmd":"open","url":"http://127.0.0.1:8470/"}        → {"ok":true,"first_render_ms":…,"nodes":…}
//   {"cmd":"wait","selector":"…","timeout_ms":2000}       → {"ok":true,"elapsed_ms":…}
//   {"cmd":"count","selector":"…"}                        → {"ok":true,"count":…}
//   {"cmd":"text","selector":"…"}                         → {"ok":true,"text":…}
//   {"cmd":"click","selector":"…"}                        → {"ok":true}
//   {"cmd":"tab","name":"activity"}                       → {"ok":true}
//   {"cmd":"screenshot","path":"…"}                       → {"ok":true}
//   {"cmd":"report"}   → {"ok":true,"dialogs":[…],"errors":[…],"csp":[…],"foreign":[…],"pwned":…}
//   {"cmd":"close"}

import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const browser = await chromium.launch({
  executablePath,
  args: [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
const dialogs = [];
const errors = [];
const csp = [];
const foreign = [];
let origin = null;
page.on("dialog", async (dialog) => {
  dialogs.push(dialog.message());
  await dialog.dismiss();
});
page.on("pageerror", (e) => errors.push(String(e)));
page.on("console", (m) => {
  const text = m.text();
  if (/Content Security Policy/i.test(text)) csp.push(text);
  else if (m.type() === "error") errors.push(text);
});
page.on("request", (r) => {
  const url = r.url();
  if (origin && !url.startsWith(origin) && !url.startsWith("ws://" + origin.slice(7)) && !url.startsWith("data:")) foreign.push(url);
});

async function handle(command) {
  switch (command.cmd) {
    case "open": {
      origin = new URL(command.url).origin;
      const started = Date.now();
      await page.goto(command.url, { waitUntil: "domcontentloaded" });
      await page.waitForSelector("body[data-ready='1']", { timeout: command.timeout_ms ?? 30000 });
      const firstRender = await page.evaluate(() => {
        const mark = performance.getEntriesByName("spore-first-render")[0];
        return mark ? mark.startTime : null;
      });
      const nodes = await page.locator("#dag g.node[data-cid]").count();
      return { ok: true, first_render_ms: firstRender, wall_ms: Date.now() - started, nodes };
    }
    case "wait": {
      const started = Date.now();
      try {
        await page.waitForSelector(command.selector, { timeout: command.timeout_ms ?? 5000, state: command.state ?? "attached" });
        return { ok: true, elapsed_ms: Date.now() - started };
      } catch (e) {
        return { ok: false, elapsed_ms: Date.now() - started, error: String(e).split("\n")[0] };
      }
    }
    case "count":
      return { ok: true, count: await page.locator(command.selector).count() };
    case "text":
      return { ok: true, text: await page.locator(command.selector).first().textContent({ timeout: 5000 }) };
    case "click":
      await page.locator(command.selector).first().click({ timeout: 5000 });
      return { ok: true };
    case "tab":
      await page.locator(`button.tab[data-tab='${command.name}']`).click({ timeout: 5000 });
      return { ok: true };
    case "screenshot":
      await page.screenshot({ path: command.path });
      return { ok: true };
    case "eval":
      return { ok: true, value: await page.evaluate(command.expression) };
    case "report": {
      const pwned = await page.evaluate(() => Boolean(window.__pwned));
      return { ok: true, dialogs, errors, csp, foreign, pwned };
    }
    case "close":
      await browser.close();
      return { ok: true };
    default:
      return { ok: false, error: `unknown command ${command.cmd}` };
  }
}

const lines = createInterface({ input: process.stdin });
console.log(JSON.stringify({ ok: true, ready: true, browser: browser.version() }));
for await (const line of lines) {
  if (!line.trim()) continue;
  let answer;
  try {
    answer = await handle(JSON.parse(line));
  } catch (e) {
    answer = { ok: false, error: String(e).split("\n")[0] };
  }
  console.log(JSON.stringify(answer));
  if (JSON.parse(line).cmd === "close") break;
}
await browser.close().catch(() => undefined);
process.exit(0);
