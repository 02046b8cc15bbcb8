// Header search: `/` focuses, 200 ms debounce, Esc closes; a full CID opens it directly.

import { api, isCid } from "./api";
import { byId, clear, el, formatBpb, shortId } from "./dom";

export function setupSearch(onSelect: (id: string) => void): void {
  const input = byId<HTMLInputElement>("search");
  const results = byId<HTMLUListElement>("search-results");
  let timer: number | undefined;
  let asked = "";
  const close = () => {
    results.hidden = true;
    clear(results);
  };
  const run = async () => {
    const text = input.value.trim();
    asked = text;
    if (text.length < 2) return close();
    if (isCid(text)) {
      close();
      onSelect(text);
      return;
    }
    const found = await api.search(text).catch(() => []);
    if (asked !== text) return;
    clear(results);
    if (found.length === 0) results.appendChild(el("li", { class: "note", text: "nothing found" }));
    for (const r of found) {
      const button = el("button", { class: `link ${r.status}`, text: `${shortId(r.id)}  ${formatBpb(r.val_bpb)}  ${r.gpu_model} — ${r.description}`, attrs: { type: "button", "data-cid": r.id } });
      button.addEventListener("click", () => {
        close();
        onSelect(r.id);
      });
      results.appendChild(el("li", {}, [button]));
    }
    results.hidden = false;
  };
  input.addEventListener("input", () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void run(), 200);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      input.value = "";
      close();
      input.blur();
    }
  });
  document.addEventListener("keydown", (event) => {
    const target = event.target as HTMLElement | null;
    if (event.key === "/" && target?.tagName !== "INPUT" && target?.tagName !== "SELECT") {
      event.preventDefault();
      input.focus();
    }
  });
}
