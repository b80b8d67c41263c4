import { type QueryClient, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { authHeaders } from "./api/client";
import { streamEvents, type SseMessage } from "./sse";

export type LiveStatus = "connecting" | "live" | "offline";

/** Which cached queries an event makes stale. */
export function keysFor(m: SseMessage): string[] {
  switch (m.event) {
    case "run.created":
    case "run.changed":
      return ["overview", "jobs", "job", "runs", "run", "run-events", "lineage", "sources"];
    case "action":
      return ["overview", "jobs", "job", "runs", "run", "audit", "approvals"];
    case "source.changed":
      return ["overview", "sources"];
    default:
      return [];
  }
}

/** Batches invalidations so a burst of run changes refetches each list once. */
export function makeInvalidator(qc: QueryClient, waitMs = 1000) {
  const pending = new Set<string>();
  let timer: ReturnType<typeof setTimeout> | null = null;
  return {
    add(keys: string[]) {
      keys.forEach((k) => pending.add(k));
      if (timer || !pending.size) return;
      timer = setTimeout(() => {
        timer = null;
        const ks = Array.from(pending);
        pending.clear();
        for (const k of ks) void qc.invalidateQueries({ queryKey: [k] });
      }, waitMs);
    },
    stop() {
      if (timer) clearTimeout(timer);
    },
  };
}

export function useLiveEvents(enabled: boolean): { status: LiveStatus; last: number | null } {
  const qc = useQueryClient();
  const [status, setStatus] = useState<LiveStatus>("connecting");
  const [last, setLast] = useState<number | null>(null);
  useEffect(() => {
    if (!enabled) return;
    const ctl = new AbortController();
    const inv = makeInvalidator(qc);
    void streamEvents({
      url: "/api/v1/events",
      headers: { ...authHeaders(), Accept: "text/event-stream" },
      signal: ctl.signal,
      onStatus: setStatus,
      onMessage: (m) => {
        setLast(Date.now());
        inv.add(keysFor(m));
      },
    });
    return () => {
      ctl.abort();
      inv.stop();
    };
  }, [enabled, qc]);
  return { status, last };
}
