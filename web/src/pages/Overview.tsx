import { useState } from "react";
import type { Overview as OverviewData } from "../api/client";
import { groupStats, Legend, StateBars, totalsByState } from "../components/StateBars";
import { Card, Empty, ErrorState, HealthBadge, Kpi, Loading, Q, SourceTags } from "../components/ui";
import { fmtAgo, fmtDuration, sum } from "../format";
import { useOverview, useRunCounts } from "../queries";
import { href, jobHref } from "../router";

type Window = "24h" | "7d";

export function Overview() {
  const q = useOverview();
  return (
    <>
      <h1>Overview</h1>
      <Q q={q} what="the overview">
        {(ov) => <OverviewBody ov={ov} />}
      </Q>
    </>
  );
}

function OverviewBody({ ov }: { ov: OverviewData }) {
  const [win, setWin] = useState<Window>("24h");
  const [by, setBy] = useState<"source" | "domain">("source");
  // The 7-day counts load after the page is shown, so switching is usually instant.
  const week = useRunCounts(24 * 7);
  const rows = win === "24h" ? ov.runs_24h : (week.data ?? []);
  const weekPending = win === "7d" && week.isPending;
  const totals = totalsByState(rows);
  const runs = sum(Object.values(totals));
  const unhealthy = ov.source_health.filter((s) => s.health !== "ok");
  if (ov.jobs === 0 && ov.sources === 0) {
    return (
      <Empty>
        <h2>Nothing to show yet</h2>
        <p>
          No source is visible to you. Either none is configured (<code>accord apply -f</code> adds
          them) or your roles do not cover any domain.
        </p>
      </Empty>
    );
  }
  return (
    <div className="grid">
      {ov.freezes.length > 0 && (
        <div className="banner freeze span-all" role="status" data-testid="freeze-banner">
          <strong>Change freeze in effect:</strong>{" "}
          {ov.freezes.map((f) => `${f.name} (${f.actions.join(", ")})`).join("; ")}.{" "}
          <a href="#/governance">Details</a>
        </div>
      )}
      <div className="kpis span-all">
        <Kpi label="jobs" value={ov.jobs} href="#/jobs" testid="kpi-jobs" />
        <Kpi label="sources" value={ov.sources} href="#/sources" testid="kpi-sources" />
        <Kpi label="runs active now" value={ov.active_runs} testid="kpi-active" />
        <Kpi
          label="jobs failing now"
          value={ov.failing_now.count}
          tone={ov.failing_now.count ? "bad" : "good"}
          href={href("/jobs", { state: "failed" })}
          testid="kpi-failing"
        />
        <Kpi label={`runs in ${win}`} value={weekPending ? "…" : runs} href="#/runs" testid="kpi-runs" />
        <Kpi
          label={`failed runs in ${win}`}
          value={weekPending ? "…" : (totals.failed ?? 0)}
          tone={totals.failed ? "bad" : undefined}
          testid="kpi-failed-runs"
        />
        <Kpi
          label="sources not ok"
          value={unhealthy.length}
          tone={unhealthy.length ? "warn" : "good"}
          href="#/sources"
          testid="kpi-unhealthy"
        />
      </div>

      <Card
        className="span-2"
        title={`Runs by state, last ${win === "24h" ? "24 hours" : "7 days"}`}
        actions={
          <>
            <Segmented
              label="window"
              value={win}
              options={["24h", "7d"]}
              onChange={(v) => setWin(v as Window)}
            />
            <Segmented
              label="group by"
              value={by}
              options={["source", "domain"]}
              onChange={(v) => setBy(v as "source" | "domain")}
            />
          </>
        }
      >
        {weekPending ? (
          <Loading what="7 days of runs" />
        ) : win === "7d" && week.isError ? (
          <ErrorState error={week.error} retry={() => week.refetch()} />
        ) : rows.length === 0 ? (
          <Empty>No runs in this window.</Empty>
        ) : (
          <>
            <StateBars
              groups={groupStats(rows, by)}
              link={(k) => href("/runs", { [by]: k, window: win })}
            />
            <Legend />
          </>
        )}
      </Card>

      <Card title={`Failing now (${ov.failing_now.count})`}>
        {ov.failing_now.count === 0 ? (
          <Empty>No job's last run failed. </Empty>
        ) : (
          <ul className="list" data-testid="failing-list">
            {ov.failing_now.items.map((j) => (
              <li key={j.uid}>
                <a href={jobHref(j.uid)}>{j.name}</a> <span className="muted">{j.source}</span>
                <span className="right muted small">{fmtAgo(j.last_run_at)}</span>
              </li>
            ))}
            {ov.failing_now.count > ov.failing_now.items.length && (
              <li>
                <a href={href("/jobs", { state: "failed" })}>
                  all {ov.failing_now.count} failing jobs
                </a>
              </li>
            )}
          </ul>
        )}
      </Card>

      <Card title="Sources" className="span-2">
        {ov.source_health.length === 0 ? (
          <Empty>No sources visible.</Empty>
        ) : (
          <table className="table compact">
            <thead>
              <tr>
                <th>source</th>
                <th>tool</th>
                <th>domain</th>
                <th>health</th>
                <th className="num">lag</th>
                <th className="num">jobs</th>
              </tr>
            </thead>
            <tbody>
              {ov.source_health.map((s) => (
                <tr key={s.name}>
                  <td>
                    <a href={href("/jobs", { source: s.name })}>{s.name}</a>{" "}
                    <SourceTags demo={s.demo} simulator={s.simulator} />
                  </td>
                  <td>{s.display_name}</td>
                  <td>{s.domain}</td>
                  <td>
                    <HealthBadge health={s.health} />
                  </td>
                  <td className="num">{fmtDuration(s.lag_seconds)}</td>
                  <td className="num">{s.jobs}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>

      <Card title="Tool sprawl">
        <table className="table compact" data-testid="sprawl">
          <thead>
            <tr>
              <th>tool</th>
              <th>domain</th>
              <th className="num">sources</th>
              <th className="num">jobs</th>
            </tr>
          </thead>
          <tbody>
            {ov.sprawl.by_tool.map((t) => (
              <tr key={`${t.type}/${t.domain}`}>
                <td>{t.type}</td>
                <td>{t.domain}</td>
                <td className="num">{t.sources}</td>
                <td className="num">{t.jobs}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <dl className="facts">
          <dt>without an owner</dt>
          <dd data-testid="sprawl-no-owner">
            {ov.sprawl.without_owner.count}
            <JobNames items={ov.sprawl.without_owner.items} />
          </dd>
          <dt>not run for {ov.sprawl.idle_after_days} days</dt>
          <dd data-testid="sprawl-idle">
            {ov.sprawl.idle.count}
            <JobNames items={ov.sprawl.idle.items} />
          </dd>
          <dt>never ran</dt>
          <dd>
            {ov.sprawl.never_run.count}
            <JobNames items={ov.sprawl.never_run.items} />
          </dd>
          <dt>paused</dt>
          <dd>
            <a href={href("/jobs", { paused: "true" })}>{ov.sprawl.paused}</a>
          </dd>
        </dl>
      </Card>
      <p className="muted small span-all">
        Updated {fmtAgo(ov.generated_at)}; counts cover only what you may see.
      </p>
    </div>
  );
}

function JobNames({ items }: { items: { uid: string; name: string }[] }) {
  if (!items.length) return null;
  const shown = items.slice(0, 3);
  // One job per line, cut with an ellipsis (the full uid is the tooltip): long cron ids
  // would otherwise wrap mid-word across the card.
  return (
    <ul className="job-names small">
      {shown.map((j) => (
        <li key={j.uid}>
          <a href={jobHref(j.uid)} title={j.uid}>
            {j.uid}
          </a>
        </li>
      ))}
      {items.length > shown.length && <li className="muted">and {items.length - shown.length} more</li>}
    </ul>
  );
}

export function Segmented({
  label,
  value,
  options,
  onChange,
}: {
  label: string;
  value: string;
  options: string[];
  onChange: (v: string) => void;
}) {
  return (
    <div className="segmented" role="group" aria-label={label}>
      {options.map((o) => (
        <button
          key={o}
          type="button"
          aria-pressed={o === value}
          className={o === value ? "on" : ""}
          onClick={() => onChange(o)}
        >
          {o}
        </button>
      ))}
    </div>
  );
}

