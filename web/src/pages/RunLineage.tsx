import { useQuery } from "@tanstack/react-query";
import { useMemo } from "react";
import { api, type Lineage, unwrap } from "../api/client";
import { SelectFilter } from "../components/Filters";
import { LineageGraph } from "../components/LineageGraph";
import { Card, Empty, ErrorState, Loading, StateBadge } from "../components/ui";
import { fmtTime } from "../format";
import { runHref, type Route, setParams } from "../router";

/** The run graph: runs that caused a chosen run and runs it caused (`triggered` edges). */
export function RunLineagePage({ route }: { route: Route }) {
  const p = route.params;
  const run = p.get("run") ?? "";
  const dir = (p.get("dir") ?? "both") as "up" | "down" | "both";
  const depth = Math.min(20, Math.max(1, Number(p.get("depth") ?? 3) || 3));
  const selected = p.get("sel");
  const set = (changes: Record<string, string | null>) => setParams(route, changes);
  const q = useQuery({
    queryKey: ["run-lineage", run, dir, depth],
    enabled: !!run,
    queryFn: () =>
      unwrap(api.GET("/api/v1/runs/{uid}/lineage", { params: { path: { uid: run }, query: { direction: dir, depth } } })),
  });
  // The job graph's component draws runs as nodes: the job's name, the run's state.
  const graph: Lineage | null = useMemo(
    () =>
      q.data
        ? {
            root: q.data.root,
            truncated: false,
            nodes: q.data.runs.map((r) => ({
              uid: r.uid,
              kind: "run",
              name: `${r.job_uid.slice(r.source.length + 1)} · ${fmtTime(r.started_at ?? r.queued_at)}`,
              source: r.source,
              domain: r.domain,
              last_run_state: r.state,
              tombstoned: false,
            })),
            edges: q.data.edges,
          }
        : null,
    [q.data],
  );
  const sel = selected && q.data?.runs.some((r) => r.uid === selected) ? selected : null;
  const chosen = q.data?.runs.find((r) => r.uid === (sel ?? run));
  return (
    <>
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Choose the run graph to show">
        <div className="field grow">
          <label htmlFor="rl-run">run</label>
          <input
            id="rl-run"
            defaultValue={run}
            key={run}
            placeholder="source/run id"
            onKeyDown={(e) => {
              if (e.key === "Enter") set({ run: (e.target as HTMLInputElement).value || null, sel: null });
            }}
          />
        </div>
        <SelectFilter
          id="rl-dir"
          label="direction"
          value={dir === "both" ? "" : dir}
          any="both"
          options={[["up", "caused by"], ["down", "caused"]]}
          onChange={(v) => set({ dir: v || null })}
        />
        <SelectFilter
          id="rl-depth"
          label="depth"
          value={String(depth)}
          any="3"
          options={["1", "2", "4", "6", "10", "20"]}
          onChange={(v) => set({ depth: v || null })}
        />
      </form>
      {!run ? (
        <Empty>
          Choose a run (its uid, or “Open the run graph” on a run's page) to see which runs caused it and which it caused.
        </Empty>
      ) : q.isPending ? (
        <Loading what="the run graph" />
      ) : q.isError ? (
        <ErrorState error={q.error} retry={() => q.refetch()} />
      ) : (
        <div className="lineage-layout">
          <div>
            <p className="muted small" data-testid="run-lineage-count">
              {q.data.runs.length} runs, {q.data.edges.length} edges within {depth} hops
              {q.data.not_shown > 0 && ` (${q.data.not_shown} more runs named by an edge are not shown: you may not read them, or Accord has not seen them)`}
              . Double-click a run to start from it.
            </p>
            {q.data.runs.length === 1 ? (
              <Empty>No run is known to have caused this run or to have been caused by it.</Empty>
            ) : (
              graph && (
                <LineageGraph
                  data={graph}
                  selected={sel}
                  impact={false}
                  onSelect={(u) => set({ sel: u })}
                  onOpen={(u) => set({ run: u, sel: null })}
                  height={560}
                />
              )
            )}
          </div>
          <aside className="side">
            <Card title={chosen ? "Run" : "Selection"}>
              {chosen ? (
                <p>
                  <a href={runHref(chosen.uid)}>
                    <code>{chosen.uid}</code>
                  </a>
                  <br />
                  <StateBadge state={chosen.state} /> {chosen.trigger} · started {fmtTime(chosen.started_at)}
                </p>
              ) : (
                <p className="muted">Nothing selected.</p>
              )}
            </Card>
            <Card title="Edges and their evidence">
              <ul className="list" data-testid="run-lineage-edges">
                {q.data.edges.map((e) => (
                  <li key={`${e.src}->${e.dst}`}>
                    <a href={runHref(e.src)}>{e.src}</a> → <a href={runHref(e.dst)}>{e.dst}</a>
                    <div className="small muted">
                      {e.evidence || "no evidence recorded"} (reported by {e.reported_by})
                    </div>
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
