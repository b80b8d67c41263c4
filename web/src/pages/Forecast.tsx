import { useQuery } from "@tanstack/react-query";
import { useMemo } from "react";
import { api, unwrap } from "../api/client";
import { Empty, Q } from "../components/ui";
import { fmtDuration, fmtTime } from "../format";
import { jobHref } from "../router";

const HOURS = 24;
const MAX_ROWS = 200;

/** The next 24 hours across every tool: one row per job, a bar per expected run from its
 *  expected start to its predicted end (start + median duration). */
export function Forecast() {
  const start = useMemo(() => new Date(Math.floor(Date.now() / 60_000) * 60_000), []);
  const end = useMemo(() => new Date(start.getTime() + HOURS * 3600_000), [start]);
  const q = useQuery({
    queryKey: ["forecast", start.toISOString()],
    refetchInterval: 60_000,
    queryFn: () =>
      unwrap(
        api.GET("/api/v1/forecast", {
          params: { query: { from: start.toISOString(), to: end.toISOString(), limit: 5000 } },
        }),
      ),
  });
  return (
    <>
      <h1>Forecast</h1>
      <p className="muted">
        Expected runs in the next {HOURS} hours across all tools, from each job's schedule; a bar runs from the expected
        start to the predicted end (median of recent successful runs).
      </p>
      <Q q={q} what="the forecast">
        {(data) => {
          if (data.items.length === 0) return <Empty>No run is expected in the next {HOURS} hours.</Empty>;
          const rows = new Map<string, typeof data.items>();
          for (const it of data.items) rows.set(it.job_uid, [...(rows.get(it.job_uid) ?? []), it]);
          const span = end.getTime() - start.getTime();
          const pct = (iso: string) => Math.min(100, Math.max(0, ((Date.parse(iso) - start.getTime()) / span) * 100));
          const shown = [...rows.entries()].slice(0, MAX_ROWS);
          return (
            <>
              <p className="muted small" data-testid="forecast-count">
                {data.total} expected runs of {rows.size} jobs{rows.size > MAX_ROWS ? ` (first ${MAX_ROWS} jobs shown)` : ""}
                {data.truncated ? "; the list is truncated" : ""}.
              </p>
              <div className="timeline" data-testid="forecast-timeline">
                <div className="timeline-axis" style={{ marginLeft: "16.5em" }}>
                  {Array.from({ length: 7 }, (_, i) => (
                    <span key={i} style={{ left: `${(i / 6) * 100}%` }}>
                      {fmtTime(new Date(start.getTime() + (i / 6) * span).toISOString())}
                    </span>
                  ))}
                </div>
                {shown.map(([uid, items]) => (
                  <div className="timeline-row" key={uid} data-testid={`forecast-row-${uid}`}>
                    <a className="timeline-label" href={jobHref(uid)} title={`${uid} (${items[0].source_type})`}>
                      {items[0].source_type}: {items[0].job_name}
                    </a>
                    <div className="timeline-lane">
                      {items.map((it) => {
                        const left = pct(it.expected_at);
                        const right = it.predicted_end ? pct(it.predicted_end) : left;
                        return (
                          <div
                            key={it.expected_at}
                            className="timeline-bar"
                            style={{ left: `${left}%`, width: `${Math.max(right - left, 0.2)}%` }}
                            title={`${uid}\nexpected ${fmtTime(it.expected_at)}${
                              it.predicted_end ? `\npredicted end ${fmtTime(it.predicted_end)}` : ""
                            }\nmedian ${fmtDuration(it.duration_median_s)}, p90 ${fmtDuration(it.duration_p90_s)}\n${it.basis}`}
                          />
                        );
                      })}
                    </div>
                  </div>
                ))}
              </div>
            </>
          );
        }}
      </Q>
    </>
  );
}
