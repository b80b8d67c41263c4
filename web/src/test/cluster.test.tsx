import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";
import type { ReactNode } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ClusterPanel } from "../components/ClusterPanel";

function wrap(ui: ReactNode) {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(<QueryClientProvider client={qc}>{ui}</QueryClientProvider>);
}

function serve(body: unknown) {
  const paths: string[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
      const req = input instanceof Request ? input : new Request(input, init);
      paths.push(new URL(req.url).pathname);
      return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
    }),
  );
  return paths;
}

afterEach(() => vi.unstubAllGlobals());

const at = "2026-01-01T00:00:00Z";
const lease = (name: string, holder: string | null, held: number | null, renewed: number, token: number) => ({
  name, holder, token, acquired_at: at, renewed_at: at, expires_at: at,
  held_for_seconds: held, renewed_age_seconds: renewed, expired: holder === null,
});

const CLUSTER = {
  mode: "cluster",
  replica: "gw-b",
  lease_seconds: 15,
  replicas: [
    { id: "gw-a", url: null, host: "node-1", pid: 4101, started_at: at, heartbeat_at: at, heartbeat_age_seconds: 1.2, alive: true, leases: 2 },
    { id: "gw-b", url: null, host: "node-2", pid: 4102, started_at: at, heartbeat_at: at, heartbeat_age_seconds: 0.4, alive: true, leases: 1 },
    { id: "gw-c", url: null, host: "node-3", pid: 4103, started_at: at, heartbeat_at: at, heartbeat_age_seconds: 42, alive: false, leases: 0 },
  ],
  sources: [
    lease("airflow-prod", "gw-a", 125, 2.5, 7),
    lease("cron-hosts", "gw-b", 8.5, 1, 3),
    lease("jenkins-ci", "gw-a", 3600, 0.2, 12),
    lease("tfc-infra", null, null, 40, 4),
  ],
  singletons: [lease("compliance", "gw-a", 300, 1, 2)],
};

describe("Cluster panel on the Sources page", () => {
  it("shows each replica, which one syncs which source and how old the leases are", async () => {
    const paths = serve(CLUSTER);
    wrap(<ClusterPanel />);
    const replicas = await screen.findByTestId("cluster-replicas");
    expect(paths).toContain("/api/v1/cluster");
    const rows = within(replicas).getAllByRole("row").slice(1);
    expect(rows.map((r) => r.getAttribute("data-replica"))).toEqual(["gw-a", "gw-b", "gw-c"]);
    expect(within(rows[0]).getByText("alive")).toBeTruthy();
    expect(rows[0].textContent).toContain("node-1 (pid 4101)");
    expect(rows[0].lastElementChild?.textContent).toBe("2");
    expect(within(rows[1]).getByText("this one")).toBeTruthy();
    expect(within(rows[2]).getByText("gone")).toBeTruthy();
    expect(rows[2].textContent).toContain("42 s ago");

    const leases = within(screen.getByTestId("cluster-leases")).getAllByRole("row").slice(1);
    const byName = Object.fromEntries(leases.map((r) => [r.getAttribute("data-source"), r]));
    expect(Object.keys(byName)).toEqual(["airflow-prod", "cron-hosts", "jenkins-ci", "tfc-infra"]);
    expect(byName["airflow-prod"].children[1].textContent).toBe("gw-a");
    expect(byName["airflow-prod"].children[2].textContent).toBe("2 min 5 s");
    expect(byName["airflow-prod"].children[3].textContent).toBe("2.5 s ago");
    expect(byName["cron-hosts"].children[1].textContent).toBe("gw-b");
    expect(byName["jenkins-ci"].children[2].textContent).toBe("1 h 0 min");
    expect(byName["tfc-infra"].children[1].textContent).toMatch(/no replica/);
    expect(byName["tfc-infra"].children[4].textContent).toBe("4");
    // Cluster-wide jobs are not sources.
    expect(byName["compliance"]).toBeUndefined();

    const summary = screen.getByTestId("cluster-summary").textContent ?? "";
    expect(summary).toContain("2 of 3 replicas alive");
    expect(summary).toContain("4 sources");
    expect(summary).toContain("15 s");
    expect(summary).toContain("1 waiting for a replica");
    expect(summary).toContain("gw-b");
  });

  it("says that a SQLite gateway is one process syncing every source", async () => {
    serve({
      mode: "single",
      replica: "local",
      lease_seconds: 15,
      replicas: [{ id: "local", leases: 2 }],
      sources: [lease("demo-etl", "local", null, 0, 0), lease("demo-cron", "local", null, 0, 0)],
      singletons: [],
    });
    wrap(<ClusterPanel />);
    const text = (await screen.findByTestId("cluster-single")).textContent ?? "";
    expect(text).toMatch(/One process/);
    expect(text).toContain("SQLite");
    expect(text).toContain("2 sources");
    expect(screen.queryByTestId("cluster-replicas")).toBeNull();
  });
});
