import { useQuery } from "@tanstack/react-query";
import { useVirtualizer } from "@tanstack/react-virtual";
import { useCallback, useMemo, useRef } from "react";
import { api, collectPages, type Run, unwrap } from "../api/client";
import { SelectFilter, TextFilter } from "../components/Filters";
import { Legend } from "../components/StateBars";
import { Empty, ErrorState, Loading, SourceTags, StateBadge } from "../components/ui";
import { fmtDuration, fmtTime, RUN_STATES } from "../format";
import { useSources } from "../queries";
import { jobHref, type Route, runHref, setParams } from "../router";
import { Segmented } from "./Overview";

export const WINDOWS: Record<string, number> = { "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400 };
const MAX_RUNS = 5000;

export interface Lane {
  source: string;
  job: string;
  runs: Run[];
}

/** One lane per job, grouped by source (tool), each lane's runs oldest first. */
export function lanes(runs: Run[]): Lane[] {
  const m = new Map<string, Lane>();
  for (const r of runs) {
    const l = m.get(r.job_uid) ?? { source: r.source, job: r.job_uid, runs: [] };
    l.runs.push(r);
    m.set(r.job_uid, l);
  }
  const out = Array.from(m.values());
  for (const l of out) l.runs.sort((a, b) => spanOf(a, 0)[0] - spanOf(b, 0)[0]);
  return out.sort((a, b) => a.source.localeCompare(b.source) || a.job.localeCompare(b.job));
}

/** [start, end] in ms; a run still going ends "now". */
export function spanOf(r: Run, now: number): [number, number] {
  const start = new Date(r.started_at ?? r.queued_at ?? r.observed_at).getTime();
  const end = r.ended_at ? new Date(r.ended_at).getTime() : Math.max(now, start);
  return [start, Math.max(end, start)];
}

export function Runs({ route }: { route: Route }) {
  const p = route.params;
  const win = p.get("window") && WINDOWS[p.get("window")!] ? p.get("window")! : "24h";
  const filters = {
    source: p.get("source") ?? "",
    domain: p.get("domain") ?? "",
    state: p.get("state") ?? "",
    q: p.get("q") ?? "",
  };
  const sources = useSources();
  const srcMap = useMemo(() => new Map((sources.data ?? []).map((s) => [s.name, s])), [sources.data]);
  const domains = useMemo(() => Array.from(new Set((sources.data ?? []).map((s) => s.domain))).sort(), [sources.data]);
  const q = useQuery({
    queryKey: ["runs", "timeline", win, filters],
    queryFn: async () => {
      const until = Date.now();
      const since = new Date(until - WINDOWS[win] * 1000).toISOString();
      const res = await collectPages(
        (cursor) =>
          unwrap(
            api.GET("/api/v1/runs", {
              params: {
                query: {
                  since,
                  source: filters.source || undefined,
                  domain: filters.domain || undefined,
                  state: filters.state ? [filters.state] : undefined,
                  q: filters.q || undefined,
                  limit: 1000,
                  cursor,
                },
              },
            }),
          ),
        MAX_RUNS,
      );
      return { ...res, since: until - WINDOWS[win] * 1000, until };
    },
  });
  const set = useCallback((k: string) => (v: string) => setParams(route, { [k]: v || null }), [route]);
  return (
    <>
      <h1>Runs</h1>
      <form className="filters" role="search" aria-label="Filter runs" onSubmit={(e) => e.preventDefault()}>
        <div className="field">
          <span className="label-like">window</span>
          <Segmented label="time window" value={win} options={Object.keys(WINDOWS)} onChange={set("window")} />
        </div>
        <SelectFilter id="r-source" label="source" value={filters.source} options={(sources.data ?? []).map((s) => s.name)} onChange={set("source")} />
        <SelectFilter id="r-domain" label="domain" value={filters.domain} options={domains} onChange={set("domain")} />
        <SelectFilter id="r-state" label="state" value={filters.state} options={[...RUN_STATES]} onChange={set("state")} />
        <TextFilter id="r-q" label="job" value={filters.q} onChange={set("q")} placeholder="job name or uid" />
      </form>
      {q.isPending ? (
        <Loading what="runs" />
      ) : q.isError ? (
        <ErrorState error={q.error} retry={() => q.refetch()} />
      ) : q.data.items.length === 0 ? (
        <Empty>No runs in the last {win} for these filters.</Empty>
      ) : (
        <>
          <p className="muted small" role="status" data-testid="runs-count">
            {q.data.items.length} runs in the last {win}
            {!q.data.complete && ` (the ${MAX_RUNS} most recent; narrow the filters to see all)`}.
          </p>
          <Gantt runs={q.data.items} since={q.data.since} until={q.data.until} sources={srcMap} />
          <Legend />
        </>
      )}
    </>
  );
}

function Gantt({
  runs,
  since,
  until,
  sources,
}: {
  runs: Run[];
  since: number;
  until: number;
  sources: Map<string, { demo: boolean; simulator: boolean }>;
}) {
  const rows = useMemo(() => {
    const out: ({ kind: "source"; source: string; jobs: number } | { kind: "lane"; lane: Lane })[] = [];
    let head: { kind: "source"; source: string; jobs: number } | null = null;
    for (const l of lanes(runs)) {
      if (!head || head.source !== l.source) {
        head = { kind: "source", source: l.source, jobs: 0 };
        out.push(head);
      }
      head.jobs++;
      out.push({ kind: "lane", lane: l });
    }
    return out;
  }, [runs]);
  const ref = useRef<HTMLDivElement>(null);
  const virt = useVirtualizer({
    count: rows.length,
    getScrollElement: () => ref.current,
    estimateSize: (i) => (rows[i].kind === "source" ? 26 : 30),
    overscan: 10,
  });
  const span = Math.max(1, until - since);
  const pct = (t: number) => Math.min(100, Math.max(0, ((t - since) / span) * 100));
  const ticks = Array.from({ length: 7 }, (_, i) => since + (span * i) / 6);
  return (
    <div className="gantt" data-testid="gantt">
      <div className="gantt-axis" aria-hidden="true">
        <div className="gantt-label" />
        <div className="gantt-track">
          {ticks.map((t) => (
            <span key={t} className="gantt-tick" style={{ left: `${pct(t)}%` }}>
              {new Date(t).toLocaleString(undefined, span > 2 * 86400_000 ? { month: "short", day: "numeric", hour: "2-digit" } : { hour: "2-digit", minute: "2-digit" })}
            </span>
          ))}
        </div>
      </div>
      <div className="gantt-body" ref={ref} tabIndex={0} aria-label="runs timeline, one row per job, grouped by source">
        <div style={{ height: virt.getTotalSize(), position: "relative" }}>
          {virt.getVirtualItems().map((vi) => {
            const row = rows[vi.index];
            if (row.kind === "source") {
              const s = sources.get(row.source);
              return (
                <div key={`s:${row.source}`} className="gantt-row gantt-group" style={{ transform: `translateY(${vi.start}px)`, height: vi.size }}>
                  <strong>{row.source}</strong> <SourceTags demo={s?.demo} simulator={s?.simulator} />
                  <span className="muted small"> {row.jobs} job{row.jobs === 1 ? "" : "s"}</span>
                </div>
              );
            }
            const l = row.lane;
            return (
              <div key={l.job} className="gantt-row" style={{ transform: `translateY(${vi.start}px)`, height: vi.size }}>
                <div className="gantt-label" title={l.job}>
                  <a href={jobHref(l.job)}>{l.job.slice(l.source.length + 1)}</a>
                </div>
                <div className="gantt-track">
                  {l.runs.map((r) => {
                    const [a, b] = spanOf(r, until);
                    const left = pct(a);
                    const width = Math.max(0.25, pct(b) - left);
                    return (
                      <a
                        key={r.uid}
                        href={runHref(r.uid)}
                        className={`gantt-bar bg-${r.state}`}
                        style={{ left: `${left}%`, width: `${width}%` }}
                        title={`${r.job_uid} — ${r.state}, ${fmtTime(r.started_at ?? r.queued_at)}, ${fmtDuration(r.duration_s)}`}
                        aria-label={`run of ${r.job_uid}: ${r.state}, started ${fmtTime(r.started_at ?? r.queued_at)}`}
                      />
                    );
                  })}
                </div>
              </div>
            );
          })}
        </div>
      </div>
      <details className="run-list">
        <summary>List the {Math.min(runs.length, 200)} most recent runs</summary>
        <table className="table compact">
          <thead>
            <tr>
              <th>job</th>
              <th>state</th>
              <th>trigger</th>
              <th>started</th>
              <th className="num">duration</th>
            </tr>
          </thead>
          <tbody>
            {runs.slice(0, 200).map((r) => (
              <tr key={r.uid}>
                <td>
                  <a href={runHref(r.uid)}>{r.job_uid}</a>
                </td>
                <td>
                  <StateBadge state={r.state} />
                </td>
                <td>{r.trigger}</td>
                <td>{fmtTime(r.started_at ?? r.queued_at)}</td>
                <td className="num">{fmtDuration(r.duration_s)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </div>
  );
}
