// Best val_bpb over time: one small chart per GPU class (their scales differ by far more than
// their improvements), a step line through the keeps that lowered the class's best.

import { scaleLinear, scaleTime } from "d3-scale";
import { line, curveStepAfter } from "d3-shape";
import type { ProgressSeries } from "./api";
import { byId, clear, el, formatBpb } from "./dom";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 380;
const HEIGHT = 150;
const MARGIN = { top: 8, right: 10, bottom: 22, left: 58 };

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string>, text?: string): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

export function renderProgress(series: ProgressSeries[], onSelect: (id: string) => void): void {
  const root = byId("progress");
  clear(root);
  const drawn = series.filter((s) => s.points.length > 0);
  if (drawn.length === 0) {
    root.appendChild(el("p", { class: "note", text: "no keeps yet" }));
    return;
  }
  // One time axis for all classes, so their progress lines up.
  const times = drawn.flatMap((s) => s.points.map((p) => p.timestamp));
  const start = Math.min(...times);
  const end = Math.max(...times, start + 60);
  const x = scaleTime()
    .domain([new Date(start * 1000), new Date(end * 1000)])
    .range([MARGIN.left, WIDTH - MARGIN.right]);
  for (const s of drawn) {
    const first = s.points[0]!;
    const last = s.points[s.points.length - 1]!;
    const gain = first.val_bpb - last.val_bpb;
    root.appendChild(
      el("h4", { text: s.class, attrs: { "data-class": s.class } }, [
        el("span", { class: "note", text: `${formatBpb(last.val_bpb)} — ${gain > 0 ? `−${gain.toFixed(4)}` : "±0"} in ${s.points.length - 1} improvements` }),
      ]),
    );
    const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "data-class": s.class });
    const y = scaleLinear()
      .domain([last.val_bpb, first.val_bpb === last.val_bpb ? last.val_bpb + 0.001 : first.val_bpb])
      .nice()
      .range([HEIGHT - MARGIN.bottom, MARGIN.top]);
    for (const tick of y.ticks(4)) {
      chart.appendChild(svg("line", { x1: String(MARGIN.left), x2: String(WIDTH - MARGIN.right), y1: String(y(tick)), y2: String(y(tick)), class: "grid" }));
      chart.appendChild(svg("text", { x: String(MARGIN.left - 6), y: String(y(tick) + 3), "text-anchor": "end", class: "axis" }, tick.toFixed(4)));
    }
    for (const tick of x.ticks(4)) {
      chart.appendChild(svg("text", { x: String(x(tick)), y: String(HEIGHT - 6), "text-anchor": "middle", class: "axis" }, x.tickFormat()(tick)));
    }
    const path = line<{ timestamp: number; val_bpb: number }>()
      .x((p) => x(new Date(p.timestamp * 1000)))
      .y((p) => y(p.val_bpb))
      .curve(curveStepAfter);
    chart.appendChild(svg("path", { d: path([...s.points, { timestamp: end, val_bpb: last.val_bpb }]) ?? "", class: "series" }));
    for (const p of s.points) {
      const dot = svg("circle", { cx: String(x(new Date(p.timestamp * 1000))), cy: String(y(p.val_bpb)), r: "2.5", class: "point", "data-cid": p.id });
      dot.appendChild(svg("title", {}, `${p.id.slice(0, 8)}  ${formatBpb(p.val_bpb)}`));
      dot.addEventListener("click", () => onSelect(p.id));
      chart.appendChild(dot);
    }
    root.appendChild(chart);
  }
}
