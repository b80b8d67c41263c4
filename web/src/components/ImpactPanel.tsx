import { useQuery } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { jobHref } from "../router";
import { Empty, Q, StateBadge } from "./ui";

/** "If this job fails or is late, what is affected downstream, across tools, and which
 * SLAs" — GET /api/v1/jobs/{uid}/impact. */
export function ImpactPanel({ uid }: { uid: string }) {
  const impact = useQuery({
    queryKey: ["impact", uid],
    queryFn: () => unwrap(api.GET("/api/v1/jobs/{uid}/impact", { params: { path: { uid } } })),
  });
  return (
    <Q q={impact} what="the impact">
      {(i) => (
        <div data-testid="impact">
          <p>
            {i.affected_jobs === 0 ? (
              "Nothing downstream is known to depend on this job."
            ) : (
              <>
                If this job fails or is late, <strong>{i.affected_jobs}</strong> job{i.affected_jobs === 1 ? "" : "s"}
                {i.affected_datasets > 0 && <> and {i.affected_datasets} dataset{i.affected_datasets === 1 ? "" : "s"}</>} downstream
                {i.sources.length > 0 && <> in {i.sources.join(", ")}</>} are affected.
              </>
            )}
            {i.slas.length > 0 && <> SLAs on this job: {i.slas.join(", ")}.</>}
          </p>
          {i.nodes.length > 0 ? (
            <table className="table">
              <thead>
                <tr>
                  <th>hops</th>
                  <th>affected</th>
                  <th>via</th>
                  <th>last run</th>
                  <th>SLAs</th>
                </tr>
              </thead>
              <tbody>
                {i.nodes.map((n) => (
                  <tr key={n.uid} data-testid="impact-row">
                    <td>{n.depth}</td>
                    <td>
                      {n.kind === "job" ? <a href={jobHref(n.uid)}>{n.uid}</a> : <span>dataset {n.uid}</span>}
                    </td>
                    <td title={n.evidence}>
                      {n.edge} from <code>{n.via}</code>
                      {n.evidence && <> ({n.evidence})</>}
                    </td>
                    <td>{n.last_run_state ? <StateBadge state={n.last_run_state} /> : "—"}</td>
                    <td>{n.slas?.length ? n.slas.join(", ") : "—"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : null}
          {i.hidden > 0 && <Empty>{i.hidden} more downstream job(s) you may not read.</Empty>}
          {i.truncated && <p className="muted">The walk stopped at its depth limit; there is more downstream.</p>}
        </div>
      )}
    </Q>
  );
}
