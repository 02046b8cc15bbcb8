// The explorer page: wires the DAG, the panels, the detail view, the feed and search, and
// keeps the deep link (`#/experiment/<cid>`) in the address bar.

import "./style.css";
import { api, isCid, type Experiment } from "./api";
import { connectFeed } from "./feed";
import { Dag, type Filter } from "./dag";
import { Detail } from "./detail";
import { Panels } from "./panels";
import { renderProgress } from "./chart";
import { setupSearch } from "./search";
import { byId, clear, el, formatBpb, shortId } from "./dom";

const REFRESH_MS = 10_000;

let mode: "lineage" | "full" = "lineage";
let nextOffset: number | null = null;

const select = (id: string) => {
  if (!isCid(id)) return;
  if (location.hash !== `#/experiment/${id}`) history.pushState(null, "", `#/experiment/${id}`);
  void detail.show(id).then(() => dag.select(id));
};

const dag = new Dag(byId("dag") as unknown as SVGSVGElement, select);
const detail = new Detail(select);
const panels = new Panels(select);

async function loadGraph(append = false): Promise<void> {
  const graph = await api.graph(mode, append && nextOffset !== null ? nextOffset : 0);
  if (append) dag.add(graph.node);
  else dag.reset(graph.node);
  nextOffset = graph.next_offset;
  byId("more").hidden = nextOffset === null;
  const what = mode === "lineage" ? "the frontier's lineages and what was tried from them" : "every record, parents first";
  byId("graph-note").textContent = `${dag.size} of ${graph.total} records shown (${what})`;
}

async function refreshStats(): Promise<void> {
  const stat = await api.stat();
  const stats = byId("stats");
  clear(stats);
  const items: [string, string][] = [
    ["experiments", String(stat.experiment_count)],
    ["keep / discard / crash", `${stat.keep} / ${stat.discard} / ${stat.crash}`],
    ["frontier", String(stat.frontier_size)],
    ["best", formatBpb(stat.best_val_bpb)],
    ["peers", String(stat.peer_count)],
    ["node", shortId(stat.node_id)],
  ];
  for (const [k, v] of items) stats.append(el("div", {}, [el("dt", { text: k }), el("dd", { text: v, attrs: { "data-stat": k } })]));
}

async function refreshProgress(): Promise<void> {
  renderProgress(await api.progress(), select);
}

function refreshAll(): void {
  void refreshStats().catch(() => undefined);
  void panels.refreshFrontier().catch(() => undefined);
  void panels.refreshLeaderboard().catch(() => undefined);
  if (!byId("panel-progress").hidden) {
    void refreshProgress().catch(() => undefined);
    void panels.refreshNoise().catch(() => undefined);
  }
}

function openFromHash(): void {
  const match = /^#\/experiment\/([0-9a-f]{64})$/.exec(location.hash);
  if (match) {
    const id = match[1]!;
    void detail.show(id).then(() => dag.select(id));
  } else {
    dag.select(null);
    detail.close();
  }
}

function onRecords(records: Experiment[]): void {
  dag.add(records);
  panels.pushActivity(records);
  byId("graph-note").textContent = `${dag.size} records shown`;
  if (records.some((r) => r.status === "keep")) void panels.refreshFrontier().catch(() => undefined);
  void refreshStats().catch(() => undefined);
}

for (const button of document.querySelectorAll<HTMLButtonElement>("button.filter")) {
  button.addEventListener("click", () => {
    for (const b of document.querySelectorAll("button.filter")) b.classList.toggle("active", b === button);
    dag.setFilter((button.dataset.status ?? "all") as Filter);
  });
}
for (const button of document.querySelectorAll<HTMLButtonElement>("button.view")) {
  button.addEventListener("click", () => {
    for (const b of document.querySelectorAll("button.view")) b.classList.toggle("active", b === button);
    mode = button.dataset.mode === "full" ? "full" : "lineage";
    void loadGraph();
  });
}
byId("more").addEventListener("click", () => void loadGraph(true));
byId("fit").addEventListener("click", () => dag.fit());
document.addEventListener("spore:tab", (event) => {
  if ((event as CustomEvent<string>).detail === "progress") {
    void refreshProgress().catch(() => undefined);
    void panels.refreshNoise().catch(() => undefined);
  }
});
window.addEventListener("popstate", openFromHash);
setupSearch(select);

async function start(): Promise<void> {
  await Promise.all([
    loadGraph(),
    refreshStats(),
    panels.refreshFrontier(),
    api.recent(50).then((records) => panels.pushActivity(records, true)),
  ]).catch((e: unknown) => {
    byId("graph-note").textContent = `cannot reach the node: ${String(e)}`;
  });
  openFromHash();
  connectFeed({
    records: onRecords,
    lagged: () => void loadGraph(),
    state: (text) => {
      byId("feed-state").textContent = text;
      document.body.dataset.feed = text;
    },
  });
  void panels.refreshLeaderboard().catch(() => undefined);
  setInterval(refreshAll, REFRESH_MS);
  // For the browser tests and the benchmark: the first view is on screen.
  requestAnimationFrame(() =>
    requestAnimationFrame(() => {
      performance.mark("spore-first-render");
      document.body.dataset.ready = "1";
    }),
  );
}

void start();
