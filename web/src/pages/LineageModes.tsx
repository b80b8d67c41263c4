import { LineagePage } from "./Lineage";
import { RunLineagePage } from "./RunLineage";
import { type Route, setParams } from "../router";

/** The lineage page: the job graph (jobs and datasets) or the run graph of a chosen run. */
export function LineageModes({ route }: { route: Route }) {
  const runs = route.params.get("mode") === "runs";
  return (
    <>
      <div className="segmented" role="group" aria-label="Graph" data-testid="lineage-mode">
        <button type="button" className={runs ? "" : "on"} aria-pressed={!runs} onClick={() => setParams(route, { mode: null, sel: null })}>
          Job graph
        </button>
        <button type="button" className={runs ? "on" : ""} aria-pressed={runs} onClick={() => setParams(route, { mode: "runs", sel: null })}>
          Run graph
        </button>
      </div>
      {runs ? (
        <>
          <h1>Run lineage</h1>
          <RunLineagePage route={route} />
        </>
      ) : (
        <LineagePage route={route} />
      )}
    </>
  );
}
