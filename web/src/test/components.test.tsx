import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { fireEvent, render, screen, waitFor } from "@testing-library/react";
import type { ReactNode } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ActionButtons } from "../components/Actions";
import { McpPanel } from "../components/McpPanel";
import { Overview } from "../pages/Overview";

function wrap(ui: ReactNode) {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(<QueryClientProvider client={qc}>{ui}</QueryClientProvider>);
}

type Handler = (req: Request) => Response | Promise<Response>;
function mockFetch(handler: Handler) {
  const calls: Request[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
      const req = input instanceof Request ? input : new Request(input, init);
      calls.push(req.clone());
      return handler(req);
    }),
  );
  return calls;
}
const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

afterEach(() => vi.unstubAllGlobals());

const sample = (count: number, uids: string[]) => ({
  count,
  items: uids.map((uid) => ({ uid, name: uid.split("/")[1], source: uid.split("/")[0], domain: "data", owners: [], last_run_state: "failed", last_run_at: null })),
});

const OVERVIEW = {
  generated_at: new Date().toISOString(),
  jobs: 42,
  sources: 3,
  runs_24h: [
    { source: "demo-etl", domain: "data", state: "success", count: 30 },
    { source: "demo-etl", domain: "data", state: "failed", count: 4 },
  ],
  active_runs: 5,
  failing_now: sample(1, ["demo-etl/ingest_payments"]),
  source_health: [
    {
      name: "demo-etl", type: "demo", display_name: "Demo scheduler", domain: "data", labels: {}, demo: true, simulator: true,
      enabled: true, health: "ok", health_message: "", last_sync_at: null, last_success_at: null, lag_seconds: 3,
      last_error: null, capabilities: [], jobs: 6,
    },
  ],
  freezes: [
    { name: "weekend-freeze", domain: "platform", type: "freeze", actions: ["trigger"], selector: {}, windows: [], active: true, subjects: [] },
  ],
  sprawl: {
    by_tool: [{ type: "demo", domain: "data", sources: 1, jobs: 6 }],
    without_owner: sample(2, ["demo-etl/a", "demo-etl/b"]),
    idle: sample(0, []),
    never_run: sample(0, []),
    paused: 1,
    idle_after_days: 30,
  },
};

describe("Overview page", () => {
  it("shows the numbers the gateway reports, labels demo sources and the freeze", async () => {
    const week = [{ source: "demo-etl", domain: "data", state: "success", count: 300 }];
    mockFetch((req) => json(new URL(req.url).pathname === "/api/v1/overview/runs" ? week : OVERVIEW));
    wrap(<Overview />);
    expect(await screen.findByTestId("kpi-jobs")).toHaveProperty("textContent", "42");
    expect(screen.getByTestId("kpi-failing").textContent).toBe("1");
    expect(screen.getByTestId("kpi-runs").textContent).toBe("34");
    expect(screen.getByTestId("kpi-failed-runs").textContent).toBe("4");
    expect(screen.getByTestId("freeze-banner").textContent).toContain("weekend-freeze");
    expect(screen.getAllByText("demo").length).toBeGreaterThan(0);
    expect(screen.getAllByText("simulator").length).toBeGreaterThan(0);
    expect(screen.getByTestId("sprawl-no-owner").textContent).toMatch(/^2/);
    fireEvent.click(screen.getByRole("button", { name: "7d" }));
    await waitFor(() => expect(screen.getByTestId("kpi-runs").textContent).toBe("300"));
  });

  it("shows an error with a retry instead of a blank page", async () => {
    let n = 0;
    mockFetch((req) =>
      new URL(req.url).pathname === "/api/v1/overview/runs"
        ? json([])
        : n++ === 0
          ? json({ error: { code: "boom", message: "database unavailable" } }, 503)
          : json(OVERVIEW),
    );
    wrap(<Overview />);
    expect((await screen.findByRole("alert")).textContent).toContain("database unavailable");
    fireEvent.click(screen.getByRole("button", { name: "Try again" }));
    expect(await screen.findByTestId("kpi-jobs")).toBeTruthy();
  });
});

describe("job actions", () => {
  it("asks for confirmation, then posts the action with the reason", async () => {
    const calls = mockFetch(() =>
      json({ action: "trigger", target: "demo-etl/j", outcome: "ok", message: "triggered", run: { uid: "demo-etl/j@1" } }),
    );
    wrap(<ActionButtons target="job" uid="demo-etl/j" name="j" actions={["trigger", "pause"]} />);
    fireEvent.click(screen.getByTestId("action-trigger"));
    expect(calls).toHaveLength(0); // nothing happens before the confirmation
    expect(screen.getByRole("dialog")).toBeTruthy();
    fireEvent.change(screen.getByLabelText(/Reason/), { target: { value: "backfill" } });
    fireEvent.click(screen.getByTestId("confirm"));
    expect((await screen.findByTestId("action-outcome")).textContent).toContain("triggered");
    expect(calls).toHaveLength(1);
    expect(new URL(calls[0].url).pathname).toBe("/api/v1/jobs/demo-etl%2Fj/trigger");
    expect(calls[0].method).toBe("POST");
    expect(await calls[0].json()).toMatchObject({ reason: "backfill", emergency: false });
    expect(screen.getByRole("link", { name: "open the new run" }).getAttribute("href")).toBe("#/runs/demo-etl%2Fj%401");
  });

  it("Escape cancels without calling the gateway", () => {
    const calls = mockFetch(() => json({}));
    wrap(<ActionButtons target="job" uid="x/y" name="y" actions={["pause"]} />);
    fireEvent.click(screen.getByTestId("action-pause"));
    fireEvent.keyDown(document, { key: "Escape" });
    expect(screen.queryByRole("dialog")).toBeNull();
    expect(calls).toHaveLength(0);
  });

  it("offers an emergency override when a freeze blocks the action", async () => {
    mockFetch(() => json({ error: { code: "blocked_by_guardrail", message: "change freeze 'weekend-freeze' is in effect" } }, 423));
    wrap(<ActionButtons target="job" uid="x/y" name="y" actions={["trigger"]} />);
    fireEvent.click(screen.getByTestId("action-trigger"));
    fireEvent.click(screen.getByTestId("confirm"));
    await waitFor(() => expect(screen.getByRole("dialog").textContent).toContain("weekend-freeze"));
    expect(screen.getByLabelText(/Emergency/)).toBeTruthy();
  });

  it("says so when the subject may take no action", () => {
    wrap(<ActionButtons target="job" uid="x/y" name="y" actions={[]} />);
    expect(screen.getByText(/may not take any action/)).toBeTruthy();
    expect(screen.queryByRole("button")).toBeNull();
  });
});

describe("MCP endpoint panel", () => {
  it("shows the gateway's MCP URL and copies it", async () => {
    const writeText = vi.fn(async () => undefined);
    vi.stubGlobal("navigator", { ...navigator, clipboard: { writeText } });
    render(<McpPanel origin="https://accord.example.com/" />);
    expect(screen.getByTestId("mcp-url").textContent).toBe("https://accord.example.com/mcp");
    fireEvent.click(screen.getByRole("button", { name: "Copy" }));
    await waitFor(() => expect(screen.getByRole("button", { name: "Copied" })).toBeTruthy());
    expect(writeText).toHaveBeenCalledWith("https://accord.example.com/mcp");
  });

  it("defaults to this gateway's own address", () => {
    render(<McpPanel />);
    expect(screen.getByTestId("mcp-url").textContent).toBe(`${window.location.origin}/mcp`);
  });
});
