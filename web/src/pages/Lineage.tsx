import { useQuery } from "@tanstack/react-query";
import { useMemo } from "react";
import { api, unwrap } from "../api/client";
import { SelectFilter } from "../components/Filters";
import { JobPicker } from "../components/JobPicker";
import { LineageGraph } from "../components/LineageGraph";
import { Card, Empty, ErrorState, Loading, StateBadge } from "../components/ui";
import { reach } from "../lineage";
import { jobHref, type Route, setParams } from "../router";

export function LineagePage({ route }: { route: Route }) {
  const p = route.params;
  const job = p.get("job") ?? "";
  const dir = (p.get("dir") ?? "both") as "up" | "down" | "both";
  const depth = Math.min(20, Math.max(1, Number(p.get("depth") ?? 3) || 3));
  const selected = p.get("sel");
  const impact = p.get("impact") === "1";
  const q = useQuery({
    queryKey: ["lineage", job, dir, depth],
    enabled: !!job,
    queryFn: () => unwrap(api.GET("/api/v1/lineage", { params: { query: { job, direction: dir, depth } } })),
  });
  const set = (changes: Record<string, string | null>) => setParams(route, changes);
  const sel = selected && q.data?.nodes.some((n) => n.uid === selected) ? selected : null;
  const down = useMemo(() => (sel && q.data ? reach(q.data.edges, sel, "down") : new Set<string>()), [sel, q.data]);
  const up = useMemo(() => (sel && q.data ? reach(q.data.edges, sel, "up") : new Set<string>()), [sel, q.data]);
  const node = q.data?.nodes.find((n) => n.uid === sel);
  return (
    <>
      <h1>Lineage</h1>
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Choose the lineage to show">
        <JobPicker value={job} onPick={(uid) => set({ job: uid || null, sel: null })} />
        <SelectFilter
          id="l-dir"
          label="direction"
          value={dir === "both" ? "" : dir}
          any="both"
          options={[["up", "upstream"], ["down", "downstream"]]}
          onChange={(v) => set({ dir: v || null })}
        />
        <SelectFilter
          id="l-depth"
          label="depth"
          value={String(depth)}
          any="3"
          options={["1", "2", "4", "6", "10", "20"]}
          onChange={(v) => set({ depth: v || null })}
        />
        <label className="check">
          <input type="checkbox" checked={impact} onChange={(e) => set({ impact: e.target.checked ? "1" : null })} /> Impact
          (highlight only what is downstream of the selection)
        </label>
      </form>
      {!job ? (
        <Empty>
          <p>Choose a job above to see what feeds it and what it feeds: type part of its name, uid or description.</p>
        </Empty>
      ) : q.isPending ? (
        <Loading what="lineage" />
      ) : q.isError ? (
        <ErrorState error={q.error} retry={() => q.refetch()} />
      ) : (
        <div className="lineage-layout">
          <div>
            <p className="muted small" data-testid="lineage-count">
              {q.data.nodes.length} nodes, {q.data.edges.length} edges within {depth} hops. Click a node to highlight its
              lineage; double-click a job to start from it.
            </p>
            {q.data.nodes.length === 1 ? (
              <Empty>This job has no known upstream or downstream.</Empty>
            ) : (
              <LineageGraph
                data={q.data}
                selected={sel}
                impact={impact}
                onSelect={(u) => set({ sel: u })}
                onOpen={(u) => q.data.nodes.find((n) => n.uid === u)?.kind === "job" && set({ job: u, sel: null })}
                height={600}
              />
            )}
            {q.data.nodes.length > 1 && (
              <p className="edge-legend" aria-label="edge kinds">
                <span>
                  <svg width="34" height="8" aria-hidden="true">
                    <line x1="0" y1="4" x2="34" y2="4" stroke="currentColor" strokeWidth="2" />
                  </svg>
                  job depends on job
                </span>
                <span>
                  <svg width="34" height="8" aria-hidden="true">
                    <line x1="0" y1="4" x2="34" y2="4" stroke="currentColor" strokeWidth="2" strokeDasharray="5 4" />
                  </svg>
                  job produces / consumes a dataset (◇)
                </span>
                <span>arrows point downstream</span>
              </p>
            )}
          </div>
          <aside className="side">
            <Card title={node ? node.name : "Selection"}>
              {node ? (
                <>
                  <p>
                    <code>{node.uid}</code>
                  </p>
                  <p>
                    {node.kind === "job" ? (
                      <>
                        job in {node.source} · last run <StateBadge state={node.last_run_state} />
                        <br />
                        <a href={jobHref(node.uid)}>Open the job</a>
                      </>
                    ) : (
                      <>dataset in {node.namespace}</>
                    )}
                  </p>
                  <p data-testid="impact-count">
                    <strong>{down.size}</strong> downstream{impact ? " (impact)" : ""}
                    {!impact && (
                      <>
                        , <strong>{up.size}</strong> upstream
                      </>
                    )}
                  </p>
                </>
              ) : (
                <p className="muted">Nothing selected.</p>
              )}
            </Card>
            <Card title="Nodes">
              <ul className="node-list" aria-label="lineage nodes">
                {q.data.nodes.map((n) => (
                  <li key={n.uid} className={sel ? (n.uid === sel ? "is-sel" : down.has(n.uid) ? "is-down" : up.has(n.uid) && !impact ? "is-up" : "") : ""}>
                    <button type="button" className="link" aria-pressed={n.uid === sel} onClick={() => set({ sel: n.uid === sel ? null : n.uid })}>
                      <span>
                        {n.kind === "dataset" ? "◇ " : ""}
                        {n.name}
                      </span>
                      {n.uid !== n.name && <span className="node-uid">{n.uid}</span>}
                    </button>
                  </li>
                ))}
              </ul>
            </Card>
          </aside>
        </div>
      )}
    </>
  );
}
