import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { api, unwrap } from "../api/client";
import { ActionButtons } from "../components/Actions";
import { DurationChart } from "../components/DurationChart";
import { ImpactPanel } from "../components/ImpactPanel";
import { LineageGraph } from "../components/LineageGraph";
import { Card, Empty, Labels, Q, SourceTags, StateBadge } from "../components/ui";
import { fmtAgo, fmtDuration, fmtTime } from "../format";
import { useSources } from "../queries";
import { href, jobHref, lineageHref, navigate, runHref } from "../router";

export function JobDetail({ uid }: { uid: string }) {
  const job = useQuery({
    queryKey: ["job", uid],
    queryFn: () => unwrap(api.GET("/api/v1/jobs/{uid}", { params: { path: { uid } } })),
  });
  const runs = useQuery({
    queryKey: ["runs", "job", uid],
    queryFn: () => unwrap(api.GET("/api/v1/runs", { params: { query: { job: uid, limit: 60 } } })),
  });
  const lineage = useQuery({
    queryKey: ["lineage", uid, "both", 1],
    queryFn: () =>
      unwrap(api.GET("/api/v1/lineage", { params: { query: { job: uid, direction: "both", depth: 1 } } })),
  });
  const sources = useSources();
  const [selected, setSelected] = useState<string | null>(null);
  return (
    <>
      <p className="crumbs">
        <a href="#/jobs">Jobs</a> /
      </p>
      <Q q={job} what="the job">
        {(j) => {
          const src = sources.data?.find((s) => s.name === j.source);
          return (
            <div className="grid">
              <header className="page-head span-all">
                <h1 data-testid="job-title">{j.name}</h1>
                <div className="sub">
                  <code>{j.uid}</code> · <a href={href("/jobs", { source: j.source })}>{j.source}</a>{" "}
                  <SourceTags demo={src?.demo} simulator={src?.simulator} /> · {src?.display_name ?? j.native_type} ·
                  domain <a href={href("/jobs", { domain: j.domain })}>{j.domain}</a>
                  {j.paused && <span className="tag tag-paused">paused</span>}
                  {j.tombstoned_at && <span className="tag tag-gone">removed at the source {fmtAgo(j.tombstoned_at)}</span>}
                </div>
                {j.url && (
                  <p>
                    <a href={j.url} target="_blank" rel="noreferrer" data-testid="deep-link">
                      Open in {src?.display_name ?? j.source} ↗
                    </a>
                  </p>
                )}
              </header>
              <Card title="Schedule" className="span-2">
                <dl className="facts">
                  <dt>schedule</dt>
                  <dd>
                    {j.schedule ? (
                      <>
                        {j.schedule.text ?? j.schedule.expression}
                        {j.schedule.text && j.schedule.expression && <code className="small"> {j.schedule.expression}</code>}
                        {j.schedule.timezone && <span className="muted"> ({j.schedule.timezone})</span>}
                      </>
                    ) : (
                      "not scheduled (manual or event-driven)"
                    )}
                  </dd>
                  <dt>next run</dt>
                  <dd data-testid="next-run">
                    {j.next_run_at ? `${fmtTime(j.next_run_at)} (${fmtAgo(j.next_run_at)})` : (j.no_next_run_reason ?? "—")}
                  </dd>
                  <dt>last run</dt>
                  <dd>
                    <StateBadge state={j.last_run_state} /> {j.last_run_at && fmtAgo(j.last_run_at)}
                  </dd>
                  <dt>owners</dt>
                  <dd>{j.owners.length ? j.owners.join(", ") : <span className="warn-text">no owner</span>}</dd>
                  <dt>labels</dt>
                  <dd>
                    <Labels labels={j.labels} />
                  </dd>
                  <dt>type</dt>
                  <dd>{j.native_type}</dd>
                  <dt>first seen</dt>
                  <dd>{fmtTime(j.first_seen)}</dd>
                </dl>
                {j.description && <p>{j.description}</p>}
                {j.problems.length > 0 && (
                  <ul className="problems">
                    {j.problems.map((p) => (
                      <li key={p}>{p}</li>
                    ))}
                  </ul>
                )}
              </Card>
              <Card title="Actions">
                <ActionButtons
                  target="job"
                  uid={j.uid}
                  name={j.name}
                  actions={(j.allowed_actions ?? []).filter((a) => (a === "pause" ? !j.paused : a === "resume" ? j.paused : true))}
                />
              </Card>
              <Card title="Impact downstream" className="span-all">
                <ImpactPanel uid={j.uid} />
              </Card>
              <Card title="Run durations" className="span-all">
                <Q q={runs} what="runs">
                  {(r) => <DurationChart runs={r.items} />}
                </Q>
              </Card>
              <Card title="Recent runs" className="span-all">
                <Q q={runs} what="runs">
                  {(r) =>
                    r.items.length === 0 ? (
                      <Empty>This job has not run yet (as far as Accord has seen).</Empty>
                    ) : (
                      <table className="table compact" data-testid="job-runs">
                        <thead>
                          <tr>
                            <th>run</th>
                            <th>state</th>
                            <th>trigger</th>
                            <th>by</th>
                            <th>started</th>
                            <th className="num">duration</th>
                          </tr>
                        </thead>
                        <tbody>
                          {r.items.slice(0, 25).map((run) => (
                            <tr key={run.uid}>
                              <td>
                                <a href={runHref(run.uid)} title={run.uid}>
                                  {run.uid.slice(j.uid.length + 1) || run.uid}
                                </a>
                              </td>
                              <td>
                                <StateBadge state={run.state} />
                              </td>
                              <td>{run.trigger}</td>
                              <td>{run.actor ?? "—"}</td>
                              <td>{fmtTime(run.started_at ?? run.queued_at)}</td>
                              <td className="num">{fmtDuration(run.duration_s)}</td>
                            </tr>
                          ))}
                        </tbody>
                      </table>
                    )
                  }
                </Q>
              </Card>
              <Card
                title="Lineage neighbourhood"
                className="span-all"
                actions={<a href={lineageHref(j.uid)}>Open in the lineage explorer</a>}
              >
                <Q q={lineage} what="lineage">
                  {(l) =>
                    l.edges.length === 0 ? (
                      <Empty>No known upstream or downstream for this job.</Empty>
                    ) : (
                      <LineageGraph
                        data={l}
                        selected={selected}
                        impact={false}
                        onSelect={setSelected}
                        onOpen={(u) => l.nodes.find((n) => n.uid === u)?.kind === "job" && navigate(jobHref(u))}
                        height={320}
                      />
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
