import { useQuery } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { LineageGraph } from "../components/LineageGraph";
import { Empty, ErrorState, Loading, Q } from "../components/ui";
import { fmtTime } from "../format";
import { href, jobHref, navigate, type Route } from "../router";

/** SLA instances, at risk first; choosing one draws the job's upstream lineage with the
 *  critical path highlighted. */
export function Slas({ route }: { route: Route }) {
  const sel = route.params.get("job");
  const slaName = route.params.get("sla");
  const q = useQuery({
    queryKey: ["slas"],
    refetchInterval: 30_000,
    queryFn: () => unwrap(api.GET("/api/v1/slas")),
  });
  const chosen = q.data?.find((s) => s.job_uid === sel && (!slaName || s.sla === slaName));
  return (
    <>
      <h1>SLAs</h1>
      <Q q={q} what="SLAs">
        {(list) =>
          list.length === 0 ? (
            <Empty>No SLA instance is visible to you. SLAs are declared with <code>kind: SLA</code> documents.</Empty>
          ) : (
            <div className="table-wrap">
              <table className="table" data-testid="slas-table">
                <thead>
                  <tr>
                    <th>state</th>
                    <th>SLA</th>
                    <th>job</th>
                    <th>reason</th>
                    <th>deadline</th>
                    <th>predicted end</th>
                    <th>since</th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((s) => (
                    <tr
                      key={`${s.sla}/${s.job_uid}`}
                      className={chosen === s ? "selected" : ""}
                      onClick={() => navigate(href("/slas", { sla: s.sla, job: s.job_uid }))}
                    >
                      <td className={`sla-${s.state}`}>{s.state.replace("_", " ")}</td>
                      <td>{s.sla}</td>
                      <td>
                        <a href={jobHref(s.job_uid)}>{s.job_uid}</a>
                      </td>
                      <td>{s.reason}</td>
                      <td>{s.deadline ? fmtTime(s.deadline) : ""}</td>
                      <td>{s.predicted_end ? fmtTime(s.predicted_end) : ""}</td>
                      <td>{fmtTime(s.since)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Q>
      {chosen && <CriticalPath job={chosen.job_uid} path={chosen.critical_path} />}
    </>
  );
}

function CriticalPath({ job, path }: { job: string; path: string[] }) {
  const q = useQuery({
    queryKey: ["lineage", job, "up"],
    queryFn: () => unwrap(api.GET("/api/v1/lineage", { params: { query: { job, direction: "up", depth: 6 } } })),
  });
  return (
    <section data-testid="sla-critical-path">
      <h2>Upstream of {job}</h2>
      <p className="muted">
        Critical path: {path.length ? [...path].reverse().concat(job).join(" → ") : "none (no unfinished upstream decides it)"}
      </p>
      {q.isLoading ? (
        <Loading what="the lineage" />
      ) : q.isError ? (
        <ErrorState error={q.error} retry={() => q.refetch()} />
      ) : q.data ? (
        <LineageGraph data={q.data} selected={job} impact={false} onSelect={() => undefined} critical={[job, ...path]} height={360} />
      ) : null}
    </section>
  );
}
