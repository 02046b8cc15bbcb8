// A unified diff as text lines, each coloured by what it does. Lines are set as text.

import { el } from "./dom";

const MAX_LINES = 4000;

export function renderDiff(diff: string): HTMLPreElement {
  const pre = el("pre", { class: "diff" });
  const lines = diff.split("\n");
  for (const line of lines.slice(0, MAX_LINES)) {
    let cls = "ctx";
    if (line.startsWith("+++") || line.startsWith("---")) cls = "file";
    else if (line.startsWith("@@")) cls = "hunk";
    else if (line.startsWith("+")) cls = "add";
    else if (line.startsWith("-")) cls = "del";
    pre.appendChild(el("span", { class: cls, text: line + "\n" }));
  }
  if (lines.length > MAX_LINES) pre.appendChild(el("span", { class: "note", text: `… ${lines.length - MAX_LINES} more lines` }));
  return pre;
}
