import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, waitFor } from "@testing-library/react";
import type { ReactNode } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Dependencies } from "../pages/Dependencies";

function wrap(ui: ReactNode) {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(<QueryClientProvider client={qc}>{ui}</QueryClientProvider>);
}
const json = (body: unknown) => new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
afterEach(() => vi.unstubAllGlobals());

const firing = (id: number, status: string, extra: Record<string, unknown> = {}) => ({
  id,
  kind: "dependency",
  rule: "build-to-report",
  key: `dependency:build-to-report:jenkins/build#${id}`,
  action: "trigger",
  job_uid: "k8s/report",
  run_uid: `jenkins/build#${id}`,
  subject: "dependency:build-to-report",
  upstream_runs: [`jenkins/build#${id}`],
  status,
  attempts: 1,
  chain_attempt: 0,
  next_attempt_at: null,
  approval_id: null,
  result_run_uid: null,
  message: "",
  observed_at: new Date().toISOString(),
  fired_at: null,
  latency_seconds: null,
  ...extra,
});

describe("Dependencies page", () => {
  it("lists each dependency across tools with its recent firings and their states", async () => {
    const fetch = vi.fn(async () =>
      json([
        {
          kind: "Dependency",
          name: "build-to-report",
          domain: "data",
          subject: "dependency:build-to-report",
          upstream: ["jenkins/build"],
          dataset: null,
          downstream: "k8s/report",
          when: ["success"],
          trigger: true,
          spec: {},
          counts: { fired: 1, held: 1, waiting: 1, dropped: 1, failed: 1 },
          firings: [
            firing(5, "failed", { message: "gave up after 3 attempt(s): denied" }),
            firing(4, "dropped", { message: "frozen by guardrail:quiet" }),
            firing(3, "waiting", { approval_id: 7 }),
            firing(2, "held"),
            firing(1, "fired", { result_run_uid: "k8s/report-123", fired_at: new Date().toISOString() }),
          ],
        },
        {
          kind: "Dependency",
          name: "lineage-only",
          domain: "data",
          subject: "dependency:lineage-only",
          upstream: ["airflow/etl"],
          dataset: null,
          downstream: "cron/export",
          when: ["success"],
          trigger: false,
          spec: {},
          counts: {},
          firings: [],
        },
      ]),
    );
    vi.stubGlobal("fetch", fetch);
    wrap(<Dependencies />);
    await waitFor(() => expect(screen.getByTestId("dependencies")).toBeTruthy());
    const [input] = fetch.mock.calls[0] as unknown as [RequestInfo | URL];
    expect(String(input instanceof Request ? input.url : input)).toContain("/api/v1/dependencies");
    const card = screen.getByTestId("dependency-build-to-report");
    expect(card.textContent).toContain("jenkins/build → k8s/report");
    const states = [...card.querySelectorAll("[data-firing]")].map((e) => e.getAttribute("data-firing"));
    expect(states).toEqual(["failed", "dropped", "waiting", "held", "fired"]);
    expect(card.querySelector('[data-firing="fired"]')?.className).toContain("state-success");
    expect(card.querySelector('[data-firing="failed"]')?.className).toContain("state-failed");
    expect(card.textContent).toContain("k8s/report-123");
    expect(card.textContent).toContain("approval 7");
    expect(screen.getByTestId("dependency-counts-build-to-report").textContent).toBe(
      "1 dropped · 1 failed · 1 fired · 1 held · 1 waiting",
    );
    const other = screen.getByTestId("dependency-lineage-only");
    expect(other.textContent).toContain("lineage only");
    expect(other.textContent).toContain("no firing yet");
  });
});
