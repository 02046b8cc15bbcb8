// The detail panel of one experiment: outcome, metrics, verification, the diff, the lineage
// and the code snapshot (loaded on demand).

import { api, type Experiment } from "./api";
import { renderDiff } from "./diff";
import { byId, clear, el, formatBpb, formatTime, shortId } from "./dom";

export class Detail {
  private readonly panel = byId<HTMLElement>("detail");
  private current: string | null = null;

  constructor(private readonly onSelect: (id: string) => void) {}

  close(): void {
    this.current = null;
    this.panel.hidden = true;
    clear(this.panel);
  }

  async show(id: string): Promise<void> {
    this.current = id;
    let record: Experiment;
    let lineage: Experiment[] = [];
    let children: Experiment[] = [];
    try {
      [record, lineage, children] = await Promise.all([api.experiment(id), api.ancestors(id), api.children(id)]);
    } catch {
      if (this.current !== id) return;
      clear(this.panel);
      this.panel.appendChild(el("p", { class: "note", text: `experiment ${shortId(id)}… is not in this node's store` }));
      this.panel.hidden = false;
      return;
    }
    if (this.current !== id) return;
    clear(this.panel);
    this.panel.hidden = false;
    this.panel.dataset.cid = id;
    const parent = lineage[1];
    const delta = parent && typeof parent.val_bpb === "number" ? record.val_bpb - parent.val_bpb : null;

    const close = el("button", { class: "close", text: "×", attrs: { type: "button", "aria-label": "close" } });
    close.addEventListener("click", () => {
      this.close();
      history.replaceState(null, "", location.pathname);
    });
    const cid = el("code", { class: "cid", text: record.id, attrs: { "data-field": "id" } });
    const copy = el("button", { class: "small", text: "copy", attrs: { type: "button" } });
    copy.addEventListener("click", () => void navigator.clipboard?.writeText(record.id));

    const parts: (Node | null)[] = [
      close,
      el("h2", {}, [el("span", { class: `badge ${record.status}`, text: record.status, attrs: { "data-field": "status" } }), document.createTextNode(" "), el("span", { text: formatBpb(record.val_bpb), attrs: { "data-field": "val_bpb" } }), delta === null ? null : el("span", { class: delta < 0 ? "delta better" : "delta worse", text: ` (${delta < 0 ? "" : "+"}${delta.toFixed(6)} vs parent)` })]),
      el("p", {}, [cid, copy]),
      el("p", { class: "description", text: record.description, attrs: { "data-field": "description" } }),
      record.hypothesis ? el("p", { class: "hypothesis", text: record.hypothesis }) : null,
      this.facts(record),
      this.verification(record),
      el("h3", { text: "Lineage" }),
      this.chain(lineage, parent ? null : record),
      children.length ? el("h3", { text: `Children (${children.length})` }) : null,
      children.length ? this.links(children) : null,
      el("h3", { text: "Diff" }),
      record.diff ? renderDiff(record.diff) : el("p", { class: "note", text: "no diff (a baseline)" }),
      this.code(record),
    ];
    for (const part of parts) if (part) this.panel.appendChild(part);
  }

  private facts(record: Experiment): HTMLElement {
    const rows: [string, string][] = [
      ["GPU", `${record.gpu_model ?? ""}`],
      ["CUDA / torch", `${record.cuda_version ?? ""} / ${record.torch_version ?? ""}`],
      ["peak VRAM", `${record.peak_vram_mb ?? ""} MB`],
      ["steps / params", `${record.num_steps ?? ""} / ${record.num_params ?? ""}`],
      ["time budget", `${record.time_budget ?? ""} s`],
      ["depth", `${record.depth}`],
      ["agent", `${record.agent_model ?? ""}`],
      ["node", `${record.node_id ?? ""}`],
      ["time", formatTime(record.timestamp)],
      ["dataset", `${record.dataset_cid ?? ""}`],
      ["measured by", measuredBy(record.measured_by)],
    ];
    return el("dl", { class: "facts" }, rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v, attrs: { "data-field": k } })]));
  }

  private verification(record: Experiment): HTMLElement {
    const v = record.verification;
    if (!v) return el("p");
    let text = "not verified yet";
    let cls = "pending";
    if (v.rejected) {
      text = `rejected by a dispute (re-run measured ${formatBpb(v.ground_truth)})`;
      cls = "rejected";
    } else if (v.verified) {
      text = `verified by ${v.verifications} re-run${v.verifications === 1 ? "" : "s"}`;
      cls = "verified";
    } else if (v.challenges > 0) {
      text = `challenged (${v.challenges}), awaiting the verdict`;
      cls = "challenged";
    }
    return el("p", { class: `verification ${cls}`, text, attrs: { "data-field": "verification" } });
  }

  private chain(lineage: Experiment[], genesis: Experiment | null): HTMLElement {
    if (genesis) return el("p", { class: "note", text: genesis.parent ? `parent ${shortId(genesis.parent)}… is not in this store` : "genesis" });
    const ordered = [...lineage].reverse();
    const last = ordered[0];
    const list = this.links(ordered);
    if (last?.parent) list.prepend(el("li", { class: "note", text: `${shortId(last.parent)}… (not in this store)` }));
    return list;
  }

  private links(records: Experiment[]): HTMLOListElement {
    return el(
      "ol",
      { class: "links" },
      records.map((r) => {
        const button = el("button", { class: `link ${r.status}`, text: `${shortId(r.id)}  ${formatBpb(r.val_bpb)}  ${r.description ?? ""}`, attrs: { type: "button", "data-cid": r.id } });
        button.addEventListener("click", () => this.onSelect(r.id));
        return el("li", {}, [button]);
      }),
    );
  }

  private code(record: Experiment): HTMLElement | null {
    const cid = record.code_cid;
    if (!cid) return null;
    const box = el("div", { class: "code" });
    const load = el("button", { class: "small", text: "show train.py", attrs: { type: "button" } });
    load.addEventListener("click", async () => {
      load.disabled = true;
      try {
        const artifact = await api.artifact(cid);
        box.replaceChildren(el("pre", { class: "source", text: artifact.content }));
      } catch {
        box.replaceChildren(el("p", { class: "note", text: "the code snapshot is not stored on this node" }));
      }
    });
    box.appendChild(load);
    return el("div", {}, [el("h3", { text: "Code" }), box]);
  }
}

/** Who measured the metric: this node's evaluator, train.py's printed value, or unknown here. */
function measuredBy(by: Experiment["measured_by"]): string {
  if (by === "evaluator") return "the trusted evaluator (this node)";
  if (by === "train.py") return "the value train.py printed (this node; no evaluator can measure its workspace)";
  return "the publisher's claim";
}
