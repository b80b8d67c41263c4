import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { useAuth } from "../auth";
import { ClusterPanel } from "../components/ClusterPanel";
import { McpPanel } from "../components/McpPanel";
import { Empty, ErrorState, HealthBadge, Labels, Q, SourceTags } from "../components/ui";
import { fmtAgo, fmtDuration, fmtTime } from "../format";
import { useSources } from "../queries";
import { href } from "../router";

export function Sources() {
  const q = useSources();
  const { can } = useAuth();
  const qc = useQueryClient();
  const sync = useMutation({
    mutationFn: (name: string) => unwrap(api.POST("/api/v1/sources/{name}/sync", { params: { path: { name } } })),
    onSettled: () => {
      void qc.invalidateQueries({ queryKey: ["sources"] });
      void qc.invalidateQueries({ queryKey: ["overview"] });
    },
  });
  return (
    <>
      <h1>Sources</h1>
      {sync.isError && <ErrorState error={sync.error} />}
      {sync.data && (
        <div className={`banner ${sync.data.error ? "error" : "ok"}`} role="status">
          Synced {String(sync.data.source)} in {String(sync.data.seconds)} s{sync.data.error ? `: ${String(sync.data.error)}` : "."}
        </div>
      )}
      <Q q={q} what="sources">
        {(list) =>
          list.length === 0 ? (
            <Empty>No source is visible to you. Sources are added with <code>accord apply -f</code>.</Empty>
          ) : (
            <div className="table-wrap">
              <table className="table" data-testid="sources-table">
                <thead>
                  <tr>
                    <th>source</th>
                    <th>tool</th>
                    <th>domain</th>
                    <th>health</th>
                    <th>last sync</th>
                    <th>last success</th>
                    <th className="num">lag</th>
                    <th className="num">jobs</th>
                    <th>last error</th>
                    <th>can</th>
                    {can("apply-config") && <th />}
                  </tr>
                </thead>
                <tbody>
                  {list.map((s) => (
                    <tr key={s.name}>
                      <td>
                        <a href={href("/jobs", { source: s.name })}>{s.name}</a> <SourceTags demo={s.demo} simulator={s.simulator} />
                        {!s.enabled && <span className="tag">disabled</span>}
                        <div className="small">
                          <Labels labels={s.labels} />
                        </div>
                      </td>
                      <td>
                        {s.display_name} <span className="muted small">({s.type})</span>
                      </td>
                      <td>{s.domain}</td>
                      <td>
                        <HealthBadge health={s.health} />
                        {s.health_message && <div className="small muted">{s.health_message}</div>}
                        {(s.problems ?? []).length > 0 && (
                          <ul className="small problems" data-testid={`problems-${s.name}`}>
                            {(s.problems ?? []).map((p, i) => (
                              <li key={i}>
                                {p.file && (
                                  <code>
                                    {p.file}
                                    {p.line ? `:${p.line}` : ""}
                                  </code>
                                )}{" "}
                                {p.message}
                              </li>
                            ))}
                          </ul>
                        )}
                      </td>
                      <td title={fmtTime(s.last_sync_at)}>{fmtAgo(s.last_sync_at)}</td>
                      <td title={fmtTime(s.last_success_at)}>{fmtAgo(s.last_success_at)}</td>
                      <td className="num">{fmtDuration(s.lag_seconds)}</td>
                      <td className="num">{s.jobs}</td>
                      <td className="wrap small">{s.last_error ?? <span className="muted">none</span>}</td>
                      <td className="small">{s.capabilities.join(", ")}</td>
                      {can("apply-config") && (
                        <td>
                          <button type="button" onClick={() => sync.mutate(s.name)} disabled={sync.isPending}>
                            Sync now
                          </button>
                        </td>
                      )}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Q>
      <ClusterPanel />
      <McpPanel />
    </>
  );
}
