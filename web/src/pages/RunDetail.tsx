import { useQuery } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { ActionButtons } from "../components/Actions";
import { Card, Empty, Q, StateBadge } from "../components/ui";
import { useAuth } from "../auth";
import { durationOf, fmtDuration, fmtTime } from "../format";
import type { Schemas } from "../api/client";
import { jobHref, runHref, runLineageHref } from "../router";

function RunLinks({ links, testid, none }: { links: Schemas["RunLink"][]; testid: string; none: string }) {
  if (links.length === 0) return <Empty>{none}</Empty>;
  return (
    <ul className="list" data-testid={testid}>
      {links.map((l) => (
        <li key={l.uid}>
          <a href={runHref(l.uid)}>{l.uid}</a> <StateBadge state={l.state} />
          <div className="small muted">
            {l.evidence || "no evidence recorded"} · {fmtTime(l.started_at)} · reported by {l.reported_by}
          </div>
        </li>
      ))}
    </ul>
  );
}

export function RunDetail({ uid }: { uid: string }) {
  const { can } = useAuth();
  const run = useQuery({
    queryKey: ["run", uid],
    queryFn: () => unwrap(api.GET("/api/v1/runs/{uid}", { params: { path: { uid } } })),
  });
  const events = useQuery({
    queryKey: ["run-events", uid],
    queryFn: () => unwrap(api.GET("/api/v1/runs/{uid}/events", { params: { path: { uid } } })),
  });
  const jobUid = run.data?.job_uid;
  const audit = useQuery({
    queryKey: ["audit", "target", uid],
    enabled: !!jobUid,
    // Actions on the run name it as their target; the trigger that started it names the
    // job and records the run it made in its details.
    queryFn: async () => {
      const [onRun, triggers] = await Promise.all([
        unwrap(api.GET("/api/v1/audit", { params: { query: { target: uid, limit: 100 } } })),
        unwrap(api.GET("/api/v1/audit", { params: { query: { target: jobUid, action: "trigger", limit: 200 } } })),
      ]);
      const started = triggers.items.filter((r) => (r.details as { run?: string }).run === uid);
      return { items: [...onRun.items, ...started].sort((a, b) => b.seq - a.seq) };
    },
  });
  return (
    <>
      <p className="crumbs">
        <a href="#/runs">Runs</a> /
      </p>
      <Q q={run} what="the run">
        {(r) => {
          const steps = r.steps ?? [];
          const t0 = Math.min(...steps.map((s) => (s.started_at ? new Date(s.started_at).getTime() : Infinity)));
          const t1 = Math.max(...steps.map((s) => (s.ended_at ? new Date(s.ended_at).getTime() : Date.now())));
          return (
            <div className="grid">
              <header className="page-head span-all">
                <h1>
                  Run of <a href={jobHref(r.job_uid)}>{r.job_uid}</a> <StateBadge state={r.state} />
                </h1>
                <div className="sub">
                  <code data-testid="run-uid">{r.uid}</code> · {r.source} · domain {r.domain}
                </div>
                {r.url && (
                  <p>
                    <a href={r.url} target="_blank" rel="noreferrer">
                      Open in the tool ↗
                    </a>
                  </p>
                )}
              </header>
              <Card title="Details">
                <dl className="facts">
                  <dt>state</dt>
                  <dd>
                    {r.state} {r.native_state && <span className="muted">(tool: {r.native_state})</span>}
                    {r.cancelled_through_accord && (
                      <div className="small muted" data-testid="cancelled-through-accord">
                        cancelled through Accord{r.cancel_requested_by ? ` by ${r.cancel_requested_by}` : ""}
                      </div>
                    )}
                  </dd>
                  <dt>trigger</dt>
                  <dd>
                    {r.trigger}
                    {r.actor && ` by ${r.actor}`}
                  </dd>
                  <dt>queued</dt>
                  <dd>{fmtTime(r.queued_at)}</dd>
                  <dt>started</dt>
                  <dd>{fmtTime(r.started_at)}</dd>
                  <dt>ended</dt>
                  <dd>{fmtTime(r.ended_at)}</dd>
                  <dt>duration</dt>
                  <dd>{fmtDuration(durationOf(r))}{!r.ended_at && r.started_at ? " so far" : ""}</dd>
                  <dt>attempt</dt>
                  <dd>{r.attempt}</dd>
                  <dt>last observed</dt>
                  <dd>{fmtTime(r.observed_at)}</dd>
                </dl>
                {r.message && <pre className="message">{r.message}</pre>}
              </Card>
              <Card title="Caused by">
                <RunLinks links={r.upstream ?? []} testid="caused-by" none="Nothing Accord knows of started this run." />
              </Card>
              <Card title="Caused">
                <RunLinks links={r.downstream ?? []} testid="caused" none="This run is not known to have started another run." />
                <p className="small">
                  <a href={runLineageHref(r.uid)}>Open the run graph</a>
                </p>
              </Card>
              <Card title="Actions">
                <ActionButtons target="run" uid={r.uid} name={r.uid} actions={(r.allowed_actions ?? []).filter((a) => (a === "cancel" ? !r.ended_at : true))} />
              </Card>
              <Card title={`Steps (${steps.length})`} className="span-all">
                {steps.length === 0 ? (
                  <Empty>The tool reports no steps for this run.</Empty>
                ) : (
                  <table className="table compact" data-testid="steps">
                    <thead>
                      <tr>
                        <th>step</th>
                        <th>state</th>
                        <th>started</th>
                        <th className="num">duration</th>
                        <th style={{ width: "35%" }}>timeline</th>
                      </tr>
                    </thead>
                    <tbody>
                      {steps.map((s) => {
                        const a = s.started_at ? new Date(s.started_at).getTime() : null;
                        const b = s.ended_at ? new Date(s.ended_at).getTime() : Date.now();
                        const span = Math.max(1, t1 - t0);
                        return (
                          <tr key={s.name}>
                            <td>{s.name}</td>
                            <td>
                              <StateBadge state={s.state} />
                            </td>
                            <td>{fmtTime(s.started_at)}</td>
                            <td className="num">{a ? fmtDuration((b - a) / 1000) : "—"}</td>
                            <td>
                              {a && isFinite(t0) && (
                                <div className="step-track">
                                  <span className={`bg-${s.state}`} style={{ left: `${((a - t0) / span) * 100}%`, width: `${Math.max(1, ((b - a) / span) * 100)}%` }} />
                                </div>
                              )}
                            </td>
                          </tr>
                        );
                      })}
                    </tbody>
                  </table>
                )}
              </Card>
              <Card title="State changes">
                <Q q={events} what="events">
                  {(ev) =>
                    ev.length === 0 ? (
                      <Empty>No state changes recorded.</Empty>
                    ) : (
                      <ol className="events" data-testid="run-events">
                        {ev.map((e) => (
                          <li key={e.seq}>
                            <span className="muted small">{fmtTime(e.at)}</span> {e.from_state ? <StateBadge state={e.from_state} /> : "new"} →{" "}
                            <StateBadge state={e.to_state} />
                          </li>
                        ))}
                      </ol>
                    )
                  }
                </Q>
              </Card>
              <Card title="Audit records on this run">
                <Q q={audit} what="audit records">
                  {(a) =>
                    a.items.length === 0 ? (
                      <Empty>
                        No action was taken on this run through Accord
                        {!can("export-audit") && " (configuration records need the auditor role)"}.
                      </Empty>
                    ) : (
                      <ul className="list">
                        {a.items.map((x) => (
                          <li key={x.seq}>
                            #{x.seq} {fmtTime(x.at)} <strong>{x.subject}</strong> {x.action} — {x.decision}/{x.outcome}
                            {x.reason && <span className="muted"> “{x.reason}”</span>}
                          </li>
                        ))}
                      </ul>
                    )
                  }
                </Q>
              </Card>
            </div>
          );
        }}
      </Q>
    </>
  );
}
