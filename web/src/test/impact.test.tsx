import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen } from "@testing-library/react";
import type { ReactNode } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ImpactPanel } from "../components/ImpactPanel";

function wrap(ui: ReactNode) {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(<QueryClientProvider client={qc}>{ui}</QueryClientProvider>);
}

afterEach(() => vi.unstubAllGlobals());

describe("ImpactPanel", () => {
  it("lists what is affected downstream across tools, with SLAs and hidden jobs", async () => {
    const seen: string[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
        const req = input instanceof Request ? input : new Request(input, init);
        seen.push(decodeURIComponent(new URL(req.url).pathname));
        const body = {
          job: "ci/build",
          slas: [],
          affected_jobs: 1,
          affected_datasets: 0,
          sources: ["infra"],
          hidden: 2,
          truncated: false,
          nodes: [
            {
              uid: "infra/ws-1",
              kind: "job",
              depth: 1,
              via: "ci/build",
              edge: "depends_on",
              evidence: "dependency chain",
              name: "warehouse",
              source: "infra",
              domain: "platform",
              last_run_state: "failed",
              slas: ["by-six"],
            },
          ],
        };
        return new Response(JSON.stringify(body), { headers: { "content-type": "application/json" } });
      }),
    );
    wrap(<ImpactPanel uid="ci/build" />);
    const rows = await screen.findAllByTestId("impact-row");
    expect(rows).toHaveLength(1);
    expect(rows[0].textContent).toContain("infra/ws-1");
    expect(rows[0].textContent).toContain("dependency chain");
    expect(rows[0].textContent).toContain("by-six");
    expect(screen.getByTestId("impact").textContent).toContain("in infra are affected");
    expect(screen.getByText(/2 more downstream job\(s\) you may not read/)).toBeTruthy();
    expect(seen).toEqual(["/api/v1/jobs/ci/build/impact"]);
  });
});
