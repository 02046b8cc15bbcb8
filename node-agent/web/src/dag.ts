// The research DAG, laid out in layers by generation (a tidy tree: every record has one
// parent), drawn in SVG with pan and zoom. Records whose parent is not in the view hang under
// a "missing parent" placeholder, so orphans never break the layout.

import { hierarchy, tree, type HierarchyPointNode } from "d3-hierarchy";
import { select, type Selection } from "d3-selection";
import { zoom, zoomIdentity, type ZoomBehavior } from "d3-zoom";
import type { Experiment, Status } from "./api";
import { formatBpb, shortId } from "./dom";

const SVG = "http://www.w3.org/2000/svg";
const ROOT = "\u0000root";
const NODE_GAP = 22;
const LAYER_GAP = 64;
/** Below this zoom the first view shows the best result's region instead of everything. */
const READABLE_SCALE = 0.45;
/** The most records the view holds; later ones only reach the feed. */
export const MAX_VIEW_NODES = 8000;

interface LayoutNode {
  id: string;
  record: Experiment | null; // null: the virtual root or a missing parent
  children: LayoutNode[];
}

export type Filter = "all" | Status;

export class Dag {
  private readonly records = new Map<string, Experiment>();
  private readonly svg: Selection<SVGSVGElement, unknown, null, undefined>;
  private readonly canvas: Selection<SVGGElement, unknown, null, undefined>;
  private readonly zoomer: ZoomBehavior<SVGSVGElement, unknown>;
  private positions = new Map<string, { x: number; y: number }>();
  private selected: string | null = null;
  private filter: Filter = "all";
  private fitted = false;
  private pending = false;
  private lastRenderEnd = 0;
  private lastRenderCost = 0;

  constructor(
    element: SVGSVGElement,
    private readonly onSelect: (id: string) => void,
  ) {
    this.svg = select(element);
    this.canvas = this.svg.append("g").attr("class", "canvas");
    this.zoomer = zoom<SVGSVGElement, unknown>()
      .scaleExtent([0.02, 5])
      .on("zoom", (event) => this.canvas.attr("transform", event.transform.toString()));
    this.svg.call(this.zoomer).on("dblclick.zoom", null);
  }

  get size(): number {
    return this.records.size;
  }

  has(id: string): boolean {
    return this.records.has(id);
  }

  /** Replaces the view's records. */
  reset(records: Experiment[]): void {
    this.records.clear();
    this.fitted = false;
    this.add(records);
  }

  /** Adds records (known ids are updated); redraws once per animation frame. */
  add(records: Experiment[]): void {
    for (const record of records) {
      if (this.records.size >= MAX_VIEW_NODES && !this.records.has(record.id)) continue;
      this.records.set(record.id, record);
    }
    this.schedule();
  }

  setFilter(filter: Filter): void {
    this.filter = filter;
    this.schedule();
  }

  select(id: string | null): void {
    this.selected = id;
    this.schedule();
    if (id) this.centerOn(id);
  }

  /** Shows the whole graph; returns the scale that took. */
  fit(): number {
    const element = this.svg.node();
    const box = this.canvas.node()?.getBBox();
    if (!element || !box || box.width === 0) return 1;
    const { width, height } = element.getBoundingClientRect();
    const scale = Math.min(2, 0.9 / Math.max(box.width / width, box.height / height));
    const x = width / 2 - scale * (box.x + box.width / 2);
    const y = height / 2 - scale * (box.y + box.height / 2);
    this.svg.call(this.zoomer.transform, zoomIdentity.translate(x, y).scale(scale));
    return scale;
  }

  /** The first view: the whole graph if it is readable so, else the best result's region. */
  private firstView(): void {
    if (this.fit() >= READABLE_SCALE) return;
    let best: Experiment | null = null;
    for (const record of this.records.values()) {
      if (record.on_frontier && (!best || record.val_bpb < best.val_bpb)) best = record;
    }
    if (best) this.centerOn(best.id, 0.9);
  }

  private centerOn(id: string, scale = 1.2): void {
    const at = this.positions.get(id);
    const element = this.svg.node();
    if (!at || !element) return;
    const { left, width, height } = element.getBoundingClientRect();
    // The detail panel covers the right of the graph: centre in what stays visible.
    const panel = document.getElementById("detail");
    const visible = panel && !panel.hidden ? Math.max(200, panel.getBoundingClientRect().left - left) : width;
    this.svg.call(this.zoomer.transform, zoomIdentity.translate(visible / 2 - scale * at.x, height / 2 - scale * at.y).scale(scale));
  }

  /**
   * One render per animation frame at most, and never sooner than four times the last
   * render's cost after it: a busy feed (100 records/s into thousands of nodes) batches into
   * a few renders a second instead of taking the whole CPU.
   */
  private schedule(): void {
    if (this.pending) return;
    this.pending = true;
    const frame = () =>
      requestAnimationFrame(() => {
        this.pending = false;
        this.render();
      });
    const wait = this.lastRenderEnd + 4 * this.lastRenderCost - performance.now();
    if (wait > 0) setTimeout(frame, wait);
    else frame();
  }

  /** The forest as one tree: roots and missing parents under a virtual root. */
  private forest(): LayoutNode {
    const nodes = new Map<string, LayoutNode>();
    const root: LayoutNode = { id: ROOT, record: null, children: [] };
    for (const [id, record] of this.records) nodes.set(id, { id, record, children: [] });
    const missing = new Map<string, LayoutNode>();
    // Children in time order, so the layout is stable as records arrive.
    const ordered = [...this.records.values()].sort((a, b) => a.timestamp - b.timestamp || (a.id < b.id ? -1 : 1));
    for (const record of ordered) {
      const node = nodes.get(record.id)!;
      if (!record.parent) {
        root.children.push(node);
      } else if (nodes.has(record.parent)) {
        nodes.get(record.parent)!.children.push(node);
      } else {
        let placeholder = missing.get(record.parent);
        if (!placeholder) {
          placeholder = { id: record.parent, record: null, children: [] };
          missing.set(record.parent, placeholder);
          root.children.push(placeholder);
        }
        placeholder.children.push(node);
      }
    }
    return root;
  }

  private render(): void {
    const started = performance.now();
    // Leaves that are siblings (what was tried from one step) sit closer than subtrees.
    const layout = tree<LayoutNode>()
      .nodeSize([NODE_GAP, LAYER_GAP])
      .separation((a, b) => (a.parent !== b.parent ? 1.5 : a.children || b.children ? 1 : 0.7));
    const laid = layout(hierarchy(this.forest(), (n) => n.children));
    const all = laid.descendants().filter((n) => n.data.id !== ROOT);
    this.positions = new Map(all.map((n) => [n.data.id, { x: n.x, y: n.y }]));
    const lineage = this.lineageOf(this.selected);
    const canvas = this.canvas.node()!;
    // One rebuild per frame: thousands of nodes cost a few milliseconds.
    const edges = document.createElementNS(SVG, "g");
    edges.setAttribute("class", "edges");
    const dots = document.createElementNS(SVG, "g");
    dots.setAttribute("class", "nodes");
    for (const node of all) {
      if (node.parent && node.parent.data.id !== ROOT) edges.appendChild(this.edge(node.parent, node, lineage));
      dots.appendChild(this.dot(node, lineage));
    }
    while (canvas.firstChild) canvas.removeChild(canvas.firstChild);
    canvas.appendChild(edges);
    canvas.appendChild(dots);
    if (!this.fitted && all.length > 0) {
      this.fitted = true;
      this.firstView();
    }
    this.lastRenderEnd = performance.now();
    this.lastRenderCost = this.lastRenderEnd - started;
    document.body.dataset.dagNodes = String(this.records.size);
    document.body.dataset.renderMs = this.lastRenderCost.toFixed(1);
  }

  private lineageOf(id: string | null): Set<string> {
    const out = new Set<string>();
    let next = id;
    while (next && !out.has(next)) {
      out.add(next);
      next = this.records.get(next)?.parent ?? null;
    }
    return out;
  }

  private edge(from: HierarchyPointNode<LayoutNode>, to: HierarchyPointNode<LayoutNode>, lineage: Set<string>): SVGPathElement {
    const path = document.createElementNS(SVG, "path");
    const midY = (from.y + to.y) / 2;
    path.setAttribute("d", `M${from.x},${from.y} C${from.x},${midY} ${to.x},${midY} ${to.x},${to.y}`);
    let cls = "edge";
    if (!from.data.record) cls += " to-missing";
    if (lineage.has(to.data.id) && lineage.has(from.data.id)) cls += " path";
    else if (this.dimmed(to.data.record, lineage)) cls += " dim";
    path.setAttribute("class", cls);
    return path;
  }

  private dimmed(record: Experiment | null, lineage: Set<string>): boolean {
    if (!record) return this.filter !== "all" || lineage.size > 0;
    if (this.filter !== "all" && record.status !== this.filter) return true;
    return lineage.size > 0 && !lineage.has(record.id);
  }

  private dot(node: HierarchyPointNode<LayoutNode>, lineage: Set<string>): SVGGElement {
    const g = document.createElementNS(SVG, "g");
    g.setAttribute("transform", `translate(${node.x},${node.y})`);
    const record = node.data.record;
    const title = document.createElementNS(SVG, "title");
    if (!record) {
      g.setAttribute("class", "node missing" + (this.dimmed(null, lineage) ? " dim" : ""));
      g.setAttribute("data-missing", node.data.id);
      const circle = document.createElementNS(SVG, "circle");
      circle.setAttribute("r", "5");
      g.appendChild(circle);
      title.textContent = `parent ${shortId(node.data.id)}… is not in this view`;
      g.appendChild(title);
      return g;
    }
    let cls = `node ${record.status}`;
    if (record.on_frontier) cls += " frontier";
    if (record.orphan) cls += " orphan";
    if (record.id === this.selected) cls += " selected";
    if (this.dimmed(record, lineage)) cls += " dim";
    g.setAttribute("class", cls);
    g.setAttribute("data-cid", record.id);
    if (record.on_frontier) {
      const ring = document.createElementNS(SVG, "circle");
      ring.setAttribute("r", "11");
      ring.setAttribute("class", "ring");
      g.appendChild(ring);
    }
    const circle = document.createElementNS(SVG, "circle");
    // Dead ends (a discard or crash nothing grew from) are drawn smaller.
    circle.setAttribute("r", node.children || record.status === "keep" ? "7" : "5");
    circle.setAttribute("class", "body");
    g.appendChild(circle);
    title.textContent = `${shortId(record.id)}  ${record.status}  ${formatBpb(record.val_bpb)}\n${record.description ?? ""}`;
    g.appendChild(title);
    g.addEventListener("click", () => this.onSelect(record.id));
    return g;
  }
}
