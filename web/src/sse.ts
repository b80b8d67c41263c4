/** Server-sent events over fetch: the gateway's stream needs the Authorization header,
 *  which EventSource cannot send. */
export interface SseMessage {
  event: string;
  data: string;
}

/** Feeds text chunks; returns the complete messages and keeps the partial rest. */
export class SseParser {
  private buf = "";

  push(chunk: string): SseMessage[] {
    this.buf += chunk.replace(/\r\n?/g, "\n");
    const out: SseMessage[] = [];
    let idx: number;
    while ((idx = this.buf.indexOf("\n\n")) >= 0) {
      const frame = this.buf.slice(0, idx);
      this.buf = this.buf.slice(idx + 2);
      let event = "message";
      const data: string[] = [];
      for (const line of frame.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = value;
        else if (field === "data") data.push(value);
      }
      if (data.length) out.push({ event, data: data.join("\n") });
    }
    return out;
  }
}

export interface StreamOptions {
  url: string;
  headers: Record<string, string>;
  onMessage: (m: SseMessage) => void;
  onStatus: (s: "connecting" | "live" | "offline") => void;
  signal: AbortSignal;
}

/** Connects, reconnects with a bounded backoff, and stops when the signal aborts. */
export async function streamEvents(o: StreamOptions): Promise<void> {
  let delay = 1000;
  while (!o.signal.aborted) {
    o.onStatus("connecting");
    try {
      const res = await fetch(o.url, { headers: o.headers, signal: o.signal });
      if (!res.ok || !res.body) throw new Error(`events answered ${res.status}`);
      o.onStatus("live");
      delay = 1000;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      const parser = new SseParser();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const m of parser.push(value)) o.onMessage(m);
      }
    } catch {
      if (o.signal.aborted) return;
    }
    o.onStatus("offline");
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 30000);
  }
}
