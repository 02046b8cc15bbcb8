// Best val_bpb over time per GPU class: a step line per class.

import { scaleLinear, scaleOrdinal, scaleTime } from "d3-scale";
import { line, curveStepAfter } from "d3-shape";
import type { ProgressSeries } from "./api";
import { byId, clear, el, formatBpb } from "./dom";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#60a5fa", "#f472b6", "#34d399", "#facc15", "#a78bfa", "#fb923c", "#22d3ee", "#e879f9"];

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string>, text?: string): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

export function renderProgress(series: ProgressSeries[]): void {
  const root = byId("progress") as unknown as SVGSVGElement;
  const legend = byId<HTMLUListElement>("progress-legend");
  clear(root);
  clear(legend);
  const width = Math.max(320, root.clientWidth || 360);
  const height = 240;
  const margin = { top: 10, right: 12, bottom: 24, left: 64 };
  root.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const points = series.flatMap((s) => s.points);
  if (points.length === 0) {
    root.appendChild(svg("text", { x: String(width / 2), y: String(height / 2), class: "note", "text-anchor": "middle" }, "no keeps yet"));
    return;
  }
  const now = Date.now() / 1000;
  const times = points.map((p) => p.timestamp);
  const values = points.map((p) => p.val_bpb);
  const x = scaleTime()
    .domain([new Date(Math.min(...times) * 1000), new Date(Math.max(now, ...times) * 1000)])
    .range([margin.left, width - margin.right]);
  const y = scaleLinear()
    .domain([Math.min(...values), Math.max(...values)])
    .nice()
    .range([height - margin.bottom, margin.top]);
  const color = scaleOrdinal<string, string>().range(COLORS);
  for (const tick of y.ticks(5)) {
    root.appendChild(svg("line", { x1: String(margin.left), x2: String(width - margin.right), y1: String(y(tick)), y2: String(y(tick)), class: "grid" }));
    root.appendChild(svg("text", { x: String(margin.left - 6), y: String(y(tick) + 4), "text-anchor": "end", class: "axis" }, tick.toFixed(3)));
  }
  for (const tick of x.ticks(4)) {
    root.appendChild(svg("text", { x: String(x(tick)), y: String(height - 6), "text-anchor": "middle", class: "axis" }, x.tickFormat()(tick)));
  }
  const path = line<{ timestamp: number; val_bpb: number }>()
    .x((p) => x(new Date(p.timestamp * 1000)))
    .y((p) => y(p.val_bpb))
    .curve(curveStepAfter);
  for (const s of series) {
    if (s.points.length === 0) continue;
    const last = s.points[s.points.length - 1]!;
    const extended = [...s.points, { timestamp: Math.max(now, last.timestamp), val_bpb: last.val_bpb }];
    root.appendChild(svg("path", { d: path(extended) ?? "", class: "series", stroke: color(s.class), "data-class": s.class }));
    legend.appendChild(el("li", {}, [el("span", { class: "swatch", attrs: { "data-color": color(s.class) } }), document.createTextNode(`${s.class}: ${formatBpb(last.val_bpb)} (${s.points.length} improvements)`)]));
  }
  // Swatch colours through the CSSOM, which the CSP allows (no inline style attributes).
  for (const swatch of legend.querySelectorAll<HTMLElement>(".swatch")) swatch.style.background = swatch.dataset.color ?? "";
}
