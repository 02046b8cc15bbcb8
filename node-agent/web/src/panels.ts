// The side panels: the frontier table, the activity feed and the reputation leaderboard.

import { api, type Experiment, type FrontierClass, type LeaderboardRow, type Noise, type Task } from "./api";
import { byId, clear, el, formatBpb, formatTime, shortId } from "./dom";

/** Items the activity list keeps. */
const MAX_ACTIVITY = 100;

export class Panels {
  private readonly activity = byId<HTMLOListElement>("activity");
  private readonly classSelect = byId<HTMLSelectElement>("frontier-class");
  private readonly taskSelect = byId<HTMLSelectElement>("frontier-task");

  constructor(private readonly onSelect: (id: string) => void) {
    this.classSelect.addEventListener("change", () => void this.refreshFrontier());
    this.taskSelect.addEventListener("change", () => void this.refreshFrontier());
    for (const tab of document.querySelectorAll<HTMLButtonElement>(".tab")) {
      tab.addEventListener("click", () => this.showTab(tab.dataset.tab ?? "frontier"));
    }
  }

  showTab(name: string): void {
    for (const tab of document.querySelectorAll<HTMLButtonElement>(".tab")) tab.classList.toggle("active", tab.dataset.tab === name);
    for (const panel of document.querySelectorAll<HTMLElement>(".panel")) panel.hidden = panel.id !== `panel-${name}`;
    document.dispatchEvent(new CustomEvent("spore:tab", { detail: name }));
  }

  private link(record: Experiment): HTMLButtonElement {
    const button = el("button", { class: "link", text: shortId(record.id), attrs: { type: "button", "data-cid": record.id } });
    button.addEventListener("click", () => this.onSelect(record.id));
    return button;
  }

  async refreshFrontier(): Promise<void> {
    const [classes, tasks, rows] = await Promise.all([
      api.frontierClasses(),
      api.tasks(),
      api.frontier(this.classSelect.value, this.taskSelect.value),
    ]);
    this.fillClasses(classes);
    this.fillTasks(tasks);
    const body = byId<HTMLTableElement>("frontier").tBodies[0]!;
    clear(body);
    rows.forEach((r, i) => {
      body.appendChild(
        el("tr", { attrs: { "data-cid": r.id } }, [
          el("td", { text: String(i + 1) }),
          el("td", {}, [this.link(r), r.verified ? el("span", { class: "badge verified", text: "✓", title: "verified by a re-run" }) : null]),
          el("td", { class: "num", text: formatBpb(r.val_bpb) }),
          el("td", { class: "gpu", text: r.gpu_model, title: r.gpu_model }),
          el("td", { class: "description", text: r.description }),
        ]),
      );
    });
  }

  private fillClasses(classes: FrontierClass[]): void {
    fillSelect(this.classSelect, classes.map((c) => ({ value: c.class, text: `${c.class} (${c.size}, best ${formatBpb(c.best_val_bpb)})` })));
  }

  private fillTasks(tasks: Task[]): void {
    fillSelect(
      this.taskSelect,
      tasks.map((t) => {
        const best = t.best_val_bpb === null ? "no frontier" : `best ${formatBpb(t.best_val_bpb)}`;
        return { value: t.task_id, text: `${t.name} (${t.frontier_size}, ${best})`, title: t.task_id };
      }),
    );
  }

  /** Newest first; `initial` fills the list without marking items as new. */
  pushActivity(records: Experiment[], initial = false): void {
    for (const r of records) {
      if (this.activity.querySelector(`li[data-cid="${r.id}"]`)) continue;
      const item = el("li", { class: `${r.status}${initial ? "" : " fresh"}`, attrs: { "data-cid": r.id } }, [
        el("span", { class: `dot ${r.status}` }),
        this.link(r),
        el("span", { class: "num", text: formatBpb(r.val_bpb) }),
        el("span", { class: "description", text: r.description }),
        el("span", { class: "meta", text: `${r.gpu_model} · ${shortId(r.node_id)} · ${formatTime(r.timestamp)}` }),
      ]);
      if (initial) this.activity.appendChild(item);
      else this.activity.prepend(item);
    }
    while (this.activity.children.length > MAX_ACTIVITY) this.activity.lastElementChild?.remove();
  }

  async refreshLeaderboard(): Promise<void> {
    const rows: LeaderboardRow[] = await api.leaderboard();
    const body = byId<HTMLTableElement>("leaderboard").tBodies[0]!;
    clear(body);
    for (const r of rows) {
      body.appendChild(
        el("tr", { attrs: { "data-node": r.node_id } }, [
          el("td", {}, [el("code", { text: shortId(r.node_id), title: r.node_id })]),
          el("td", { class: "num", text: r.score.toFixed(2) }),
          el("td", { class: "num", text: String(r.experiments_published) }),
          el("td", { class: "num", text: String(r.experiments_verified) }),
          el("td", { class: "num", text: String(r.verifications_performed) }),
          el("td", { class: "num", text: `${r.disputes_won} / ${r.disputes_lost}` }),
        ]),
      );
    }
  }

  async refreshNoise(): Promise<void> {
    const noise: Noise = await api.noise();
    const body = byId<HTMLTableElement>("noise").tBodies[0]!;
    clear(body);
    for (const s of noise.settings) {
      const margin = s.margin === null ? "measuring" : formatBpb(s.margin);
      body.appendChild(
        el("tr", { attrs: { "data-class": s.gpu_class } }, [
          el("td", { text: s.gpu_class }),
          el("td", { class: "num", text: `${s.time_budget} s` }),
          el("td", { class: "num", text: s.sigma === null ? `${s.dof} of 2 dof` : formatBpb(s.sigma) }),
          el("td", { class: "num", text: s.runs === null ? "" : String(s.runs) }),
          el("td", { class: "num", text: noise.keep_margin === null ? margin : `${margin} (fixed)` }),
        ]),
      );
    }
  }
}

/** Refills `select` with "all" and `options`, only when the values changed, keeping the choice. */
function fillSelect(select: HTMLSelectElement, options: { value: string; text: string; title?: string }[]): void {
  const current = select.value;
  const wanted = ["", ...options.map((o) => o.value)];
  const have = [...select.options].map((o) => o.value);
  if (wanted.join("\u0000") === have.join("\u0000")) return;
  clear(select);
  select.appendChild(el("option", { text: "all", attrs: { value: "" } }));
  for (const o of options) {
    select.appendChild(el("option", { text: o.text, attrs: o.title ? { value: o.value, title: o.title } : { value: o.value } }));
  }
  select.value = wanted.includes(current) ? current : "";
}
