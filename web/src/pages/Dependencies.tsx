import { useQuery } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { Empty, Q } from "../components/ui";
import { fmtTime } from "../format";
import { jobHref, runHref } from "../router";

/** How each firing status looks: the run-state colour closest to what it means. */
const FIRING_LOOK: Record<string, string> = {
  fired: "success",
  held: "waiting",
  waiting: "waiting",
  pending: "queued",
  dispatching: "running",
  retrying: "queued",
  dropped: "skipped",
  skipped: "skipped",
  failed: "failed",
  unknown: "unknown",
};

export function FiringStatus({ status }: { status: string }) {
  return (
    <span className={`state state-${FIRING_LOOK[status] ?? "unknown"}`} data-firing={status}>
      {status}
    </span>
  );
}

/** Declared Dependency documents (upstream → downstream across tools) and their recent
 *  firings with their states: fired, held (a freeze), waiting (an approval), dropped,
 *  failed, and the ones still on their way. */
export function Dependencies() {
  const q = useQuery({
    queryKey: ["dependencies"],
    refetchInterval: 15_000,
    queryFn: () => unwrap(api.GET("/api/v1/dependencies", { params: { query: { firings: 10 } } })),
  });
  return (
    <>
      <h1>Dependencies</h1>
      <Q q={q} what="dependencies">
        {(list) =>
          list.length === 0 ? (
            <Empty>
              No dependency is visible to you. Dependencies are declared with <code>kind: Dependency</code> documents.
            </Empty>
          ) : (
            <div data-testid="dependencies">
              {list.map((d) => (
                <section key={d.name} className="card dep-card" data-testid={`dependency-${d.name}`}>
                  <h2>{d.name}</h2>
                  <p>
                    {d.dataset ? (
                      <>
                        dataset <code>{d.dataset}</code>
                      </>
                    ) : (
                      (d.upstream ?? []).map((u, i) => (
                        <span key={u}>
                          {i > 0 && " + "}
                          <a href={jobHref(u)}>{u}</a>
                        </span>
                      ))
                    )}
                    {" → "}
                    {d.downstream ? <a href={jobHref(d.downstream)}>{d.downstream}</a> : "—"}
                    <span className="muted">
                      {" "}
                      when {(d.when ?? []).join(", ") || "success"}
                      {d.trigger ? `, fires as ${d.subject}` : ", lineage only"}
                    </span>
                  </p>
                  <p className="muted" data-testid={`dependency-counts-${d.name}`}>
                    {Object.keys(d.counts).length
                      ? Object.entries(d.counts)
                          .sort()
                          .map(([s, n]) => `${n} ${s}`)
                          .join(" · ")
                      : "no firing yet"}
                  </p>
                  {d.firings.length > 0 && (
                    <div className="table-wrap">
                      <table className="table">
                        <thead>
                          <tr>
                            <th>status</th>
                            <th>upstream run</th>
                            <th>observed</th>
                            <th>fired</th>
                            <th>downstream run</th>
                            <th>attempts</th>
                            <th>message</th>
                          </tr>
                        </thead>
                        <tbody>
                          {d.firings.map((f) => (
                            <tr key={f.id}>
                              <td>
                                <FiringStatus status={f.status} />
                              </td>
                              <td>
                                {f.upstream_runs.map((r) => (
                                  <div key={r}>
                                    <a href={runHref(r)}>{r}</a>
                                  </div>
                                ))}
                              </td>
                              <td>{fmtTime(f.observed_at)}</td>
                              <td>{f.fired_at ? fmtTime(f.fired_at) : ""}</td>
                              <td>{f.result_run_uid ? <a href={runHref(f.result_run_uid)}>{f.result_run_uid}</a> : ""}</td>
                              <td>{f.attempts}</td>
                              <td>
                                {f.message ?? ""}
                                {f.approval_id != null && f.status === "waiting" && (
                                  <>
                                    {" "}
                                    (<a href="#/governance">approval {f.approval_id}</a>)
                                  </>
                                )}
                              </td>
                            </tr>
                          ))}
                        </tbody>
                      </table>
                    </div>
                  )}
                </section>
              ))}
            </div>
          )
        }
      </Q>
    </>
  );
}
