// The live feed over `WS /ws`: Python's `{"event":"experiment","data":record}` messages,
// batched per animation frame, reconnecting after 2 s. `lagged` means events were skipped:
// the page reloads its view.

import type { Experiment } from "./api";

export interface FeedHandlers {
  records: (records: Experiment[]) => void;
  lagged: () => void;
  state: (text: string) => void;
}

export function connectFeed(handlers: FeedHandlers): void {
  let batch: Experiment[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const records = batch;
    batch = [];
    if (records.length) handlers.records(records);
  };
  const open = () => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws`);
    socket.addEventListener("open", () => handlers.state("live"));
    socket.addEventListener("message", (event) => {
      let message: { event?: string; data?: Experiment };
      try {
        message = JSON.parse(String(event.data));
      } catch {
        return;
      }
      if (message.event === "experiment" && message.data && typeof message.data.id === "string") {
        batch.push(message.data);
        if (!scheduled) {
          scheduled = true;
          requestAnimationFrame(flush);
        }
      } else if (message.event === "lagged") {
        handlers.lagged();
      }
    });
    socket.addEventListener("close", () => {
      handlers.state("disconnected, retrying…");
      setTimeout(open, 2000);
    });
  };
  open();
}
