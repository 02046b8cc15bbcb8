// The explorer benchmark's browser half (benches/explorer.sh runs it against a node holding a
// seeded store): first render of the page, then the live feed at a fixed rate.
//
//   node e2e/bench.mjs --url http://127.0.0.1:P/ --gossip 127.0.0.1:Q --records FILE --rate 100 --seconds 30
//
// First render: the time from navigation to the page's `spore-first-render` mark (the graph,
// stats, frontier and recent activity fetched and drawn), over --loads page loads.
// Feed: the records in FILE are sent to the node's gossip port as `experiment` messages at
// --rate per second; the page's activity list and DAG are watched for each of them. Printed:
// how many arrived, the delay from send to on-screen (p50/p95/max), and whether the page kept
// up (every record shown, and the delay did not grow over the run).

import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import { connect } from "node:net";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => (arg.startsWith("--") ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), []),
);
const url = args.url;
const [gossipHost, gossipPort] = (args.gossip ?? "").split(":");
const rate = Number(args.rate ?? 100);
const seconds = Number(args.seconds ?? 30);
const loads = Number(args.loads ?? 5);
const lines = readFileSync(args.records, "utf8").split("\n").filter(Boolean).slice(0, rate * seconds);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });

const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN;
};

// First render, over several loads (the first one also fills caches; all are reported).
const renders = [];
let nodes = 0;
for (let i = 0; i < loads; i++) {
  await page.goto(url, { waitUntil: "domcontentloaded" });
  await page.waitForSelector("body[data-ready='1']", { timeout: 60000 });
  renders.push(await page.evaluate(() => performance.getEntriesByName("spore-first-render")[0].startTime));
  nodes = await page.locator("#dag g.node[data-cid]").count();
}
const stat = await page.evaluate(() => fetch("/api/stat").then((r) => r.json()));
console.log(`store: ${stat.experiment_count} records; first view draws ${nodes} nodes (the frontier's lineages and what was tried from them)`);
console.log(`first render: median ${quantile(renders, 0.5).toFixed(0)} ms, max ${Math.max(...renders).toFixed(0)} ms over ${loads} loads (${renders.map((r) => r.toFixed(0)).join(", ")})`);

// Feed: watch the activity list for new items, then gossip at the given rate.
await page.locator("button.tab[data-tab='activity']").click();
await page.waitForSelector("body[data-feed='live']", { timeout: 10000 });
await page.evaluate(() => {
  window.__seen = {};
  const list = document.querySelector("#activity");
  new MutationObserver((mutations) => {
    const now = performance.timeOrigin + performance.now();
    for (const m of mutations) for (const n of m.addedNodes) if (n.dataset?.cid && !window.__seen[n.dataset.cid]) window.__seen[n.dataset.cid] = now;
  }).observe(list, { childList: true });
});

const socket = connect({ host: gossipHost, port: Number(gossipPort) });
await new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject));
socket.on("data", () => undefined); // the node syncs us; we only send
const sent = {};
const started = Date.now();
for (let i = 0; i < lines.length; i++) {
  const due = started + (i * 1000) / rate;
  const wait = due - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const body = Buffer.from(`{"type":"experiment","payload":${lines[i]}}`);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.length);
  socket.write(Buffer.concat([header, body]));
  sent[JSON.parse(lines[i]).id] = Date.now();
}
const sendSeconds = (Date.now() - started) / 1000;
await new Promise((r) => setTimeout(r, 3000));
const seen = await page.evaluate(() => window.__seen);
const inDag = await page.evaluate((ids) => ids.filter((id) => document.querySelector(`#dag g.node[data-cid="${id}"]`)).length, Object.keys(sent));
socket.destroy();

const delays = [];
const firstHalf = [];
const secondHalf = [];
const ids = Object.keys(sent);
ids.forEach((id, i) => {
  if (!seen[id]) return;
  const delay = seen[id] - sent[id];
  delays.push(delay);
  (i < ids.length / 2 ? firstHalf : secondHalf).push(delay);
});
const renderMs = await page.evaluate(() => document.body.dataset.renderMs);
console.log(`feed: sent ${ids.length} records in ${sendSeconds.toFixed(1)} s (${(ids.length / sendSeconds).toFixed(1)}/s); ${delays.length} reached the activity list, ${inDag} the DAG`);
console.log(`feed delay send→on screen: p50 ${quantile(delays, 0.5).toFixed(0)} ms, p95 ${quantile(delays, 0.95).toFixed(0)} ms, max ${Math.max(...delays).toFixed(0)} ms; p50 first half ${quantile(firstHalf, 0.5).toFixed(0)} ms, second half ${quantile(secondHalf, 0.5).toFixed(0)} ms; last DAG render ${renderMs} ms`);
const keptUp = delays.length === ids.length && quantile(secondHalf, 0.5) < 2 * Math.max(250, quantile(firstHalf, 0.5));
console.log(`feed kept up: ${keptUp ? "yes" : "NO"}`);
await browser.close();
process.exit(0);
