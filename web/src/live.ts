import { type QueryClient, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { authHeaders } from "./api/client";
import { streamEvents, type SseMessage } from "./sse";

export type LiveStatus = "connecting" | "live" | "offline";

type Key = readonly string[];

/** Lists that cost a large request (the runs timeline fetches up to 5,000 runs): a burst
 *  of events refreshes them at most once per ``heavyMs``, not once per event batch. */
export const HEAVY = new Set(["runs", "overview", "lineage", "jobs", "sources"]);

function parse(data: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(data);
    return v && typeof v === "object" ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** Which cached queries an event makes stale. A run change names the run and its job:
 *  only that run's and that job's detail queries are refreshed, plus the lists. */
export function keysFor(m: SseMessage): Key[] {
  switch (m.event) {
    case "run.created":
    case "run.changed": {
      const d = parse(m.data);
      const keys: Key[] = [["overview"], ["jobs"], ["runs"], ["lineage"], ["sources"]];
      if (typeof d.uid === "string") keys.push(["run", d.uid], ["run-events", d.uid], ["run-lineage", d.uid]);
      if (typeof d.job_uid === "string") keys.push(["job", d.job_uid]);
      return keys;
    }
    case "action":
      return [["overview"], ["jobs"], ["job"], ["runs"], ["run"], ["audit"], ["approvals"]];
    case "source.changed":
      return [["overview"], ["sources"]];
    default:
      return [];
  }
}

/** Batches invalidations: a burst of run changes refetches each query once per ``waitMs``,
 *  and each heavy list at most once per ``heavyMs``. */
export function makeInvalidator(qc: QueryClient, waitMs = 1000, heavyMs = 10000) {
  const pending = new Map<string, Key>();
  const lastHeavy = new Map<string, number>();
  let timer: ReturnType<typeof setTimeout> | null = null;
  const flush = () => {
    timer = null;
    const now = Date.now();
    const later: Key[] = [];
    for (const key of pending.values()) {
      const root = key[0];
      if (key.length === 1 && HEAVY.has(root)) {
        const last = lastHeavy.get(root);
        if (last !== undefined && now - last < heavyMs) {
          later.push(key);
          continue;
        }
        lastHeavy.set(root, now);
      }
      void qc.invalidateQueries({ queryKey: [...key] });
    }
    pending.clear();
    for (const k of later) pending.set(JSON.stringify(k), k);
    if (pending.size) timer = setTimeout(flush, waitMs);
  };
  return {
    add(keys: Key[]) {
      keys.forEach((k) => pending.set(JSON.stringify(k), k));
      if (timer || !pending.size) return;
      timer = setTimeout(flush, waitMs);
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
