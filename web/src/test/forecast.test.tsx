import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, waitFor } from "@testing-library/react";
import type { ReactNode } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Forecast } from "../pages/Forecast";
import { Slas } from "../pages/Slas";
import { parseHash } from "../router";

function wrap(ui: ReactNode) {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(<QueryClientProvider client={qc}>{ui}</QueryClientProvider>);
}
const json = (body: unknown) => new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
afterEach(() => vi.unstubAllGlobals());

describe("Forecast page", () => {
  it("draws one row per job with a bar per expected run up to its predicted end", async () => {
    const now = Date.now();
    const at = (h: number) => new Date(now + h * 3600_000).toISOString();
    vi.stubGlobal(
      "fetch",
      vi.fn(async () =>
        json({
          start: at(0),
          end: at(24),
          total: 3,
          truncated: false,
          computed_at: at(0),
          items: [
            { job_uid: "cron-a/backup", job_name: "backup", source: "cron-a", source_type: "cron", domain: "ops", expected_at: at(2), predicted_end: at(3), duration_median_s: 3600, duration_p90_s: 4000, samples: 10, basis: "schedule" },
            { job_uid: "k8s/report", job_name: "report", source: "k8s", source_type: "kubernetes", domain: "data", expected_at: at(4), predicted_end: null, duration_median_s: null, duration_p90_s: null, samples: 0, basis: "schedule" },
            { job_uid: "cron-a/backup", job_name: "backup", source: "cron-a", source_type: "cron", domain: "ops", expected_at: at(14), predicted_end: at(15), duration_median_s: 3600, duration_p90_s: 4000, samples: 10, basis: "schedule" },
          ],
        }),
      ),
    );
    wrap(<Forecast />);
    await waitFor(() => expect(screen.getByTestId("forecast-timeline")).toBeTruthy());
    expect(screen.getByTestId("forecast-count").textContent).toContain("3 expected runs of 2 jobs");
    const row = screen.getByTestId("forecast-row-cron-a/backup");
    const bars = row.querySelectorAll(".timeline-bar");
    expect(bars.length).toBe(2);
    // 2 h to 3 h of a 24 h window: starts near 8.3 % and is about 4.2 % wide.
    expect(parseFloat((bars[0] as HTMLElement).style.left)).toBeCloseTo(8.33, 0);
    expect(parseFloat((bars[0] as HTMLElement).style.width)).toBeCloseTo(4.17, 0);
  });
});

describe("SLAs page", () => {
  it("lists instances and highlights the critical path on the lineage", async () => {
    // jsdom has no ResizeObserver; React Flow only needs it to exist here.
    vi.stubGlobal(
      "ResizeObserver",
      class {
        observe() {}
        unobserve() {}
        disconnect() {}
      },
    );
    vi.stubGlobal(
      "fetch",
      vi.fn(async (input: RequestInfo | URL) => {
        const url = String(input instanceof Request ? input.url : input);
        if (url.includes("/api/v1/slas"))
          return json([
            { sla: "report-by-six", job_uid: "k8s/report", domain: "data", state: "at_risk", reason: "waiting on jenkins/build, running 28 min over its p90", objective: "finishBy", deadline: new Date().toISOString(), predicted_end: new Date().toISOString(), critical_path: ["jenkins/build"], since: new Date().toISOString(), evaluated_at: new Date().toISOString() },
          ]);
        return json({
          root: "k8s/report",
          nodes: [
            { uid: "k8s/report", kind: "job", name: "report", source: "k8s", domain: "data", last_run_state: null, tombstoned: false },
            { uid: "jenkins/build", kind: "job", name: "build", source: "jenkins", domain: "data", last_run_state: "running", tombstoned: false },
          ],
          edges: [{ kind: "depends_on", src: "jenkins/build", dst: "k8s/report", evidence: "test", reported_by: "jenkins" }],
          truncated: false,
        });
      }),
    );
    wrap(<Slas route={parseHash("#/slas?sla=report-by-six&job=k8s/report")} />);
    await waitFor(() => expect(screen.getByTestId("slas-table")).toBeTruthy());
    expect(screen.getByText(/running 28 min over its p90/)).toBeTruthy();
    await waitFor(() => expect(screen.getByTestId("sla-critical-path").textContent).toContain("jenkins/build → k8s/report"));
  });
});
