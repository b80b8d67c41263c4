import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { fireEvent, render, screen, waitFor } from "@testing-library/react";
import type { ReactNode } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { JobPicker, PICKER_LIMIT } from "../components/JobPicker";
import { cellTitle } from "../pages/Jobs";

function wrap(ui: ReactNode) {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(<QueryClientProvider client={qc}>{ui}</QueryClientProvider>);
}

afterEach(() => vi.unstubAllGlobals());

// 250 jobs on the "server": the picker must find any of them, not the first 30.
const ALL = Array.from({ length: 250 }, (_, i) => ({
  uid: `cron-host/job-${String(i).padStart(3, "0")}`,
  name: `job-${String(i).padStart(3, "0")}`,
}));

function serve() {
  const seen: URL[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
      const req = input instanceof Request ? input : new Request(input, init);
      const url = new URL(req.url);
      seen.push(url);
      const q = url.searchParams.get("q") ?? "";
      const limit = Number(url.searchParams.get("limit"));
      const hits = ALL.filter((j) => j.uid.includes(q));
      const body = { items: hits.slice(0, limit), next_cursor: hits.length > limit ? "more" : null, total: null };
      return new Response(JSON.stringify(body), { headers: { "content-type": "application/json" } });
    }),
  );
  return seen;
}

describe("JobPicker", () => {
  it("searches every job on the server and picks with the keyboard", async () => {
    const seen = serve();
    const picked: string[] = [];
    wrap(<JobPicker value="" onPick={(u) => picked.push(u)} />);
    const box = screen.getByRole("combobox");
    fireEvent.focus(box);
    await screen.findByText(`the first ${PICKER_LIMIT} matches: type more to narrow`);
    fireEvent.change(box, { target: { value: "job-24" } });
    await waitFor(() => expect(screen.getAllByRole("option")).toHaveLength(10)); // 240..249
    expect(seen.some((u) => u.searchParams.get("q") === "job-24")).toBe(true);
    fireEvent.keyDown(box, { key: "ArrowDown" });
    fireEvent.keyDown(box, { key: "ArrowDown" });
    fireEvent.keyDown(box, { key: "Enter" });
    expect(picked).toEqual(["cron-host/job-242"]);
  });

  it("says when nothing matches", async () => {
    serve();
    wrap(<JobPicker value="" onPick={() => undefined} />);
    const box = screen.getByRole("combobox");
    fireEvent.focus(box);
    fireEvent.change(box, { target: { value: "no-such-thing" } });
    await screen.findByText("No job matches.");
  });
});

describe("jobs table tooltips", () => {
  it("give the full text of cells the column may cut", () => {
    const job = {
      uid: "demo-cron/host-a:very-long-nightly-backup-of-the-warehouse",
      name: "very-long-nightly-backup-of-the-warehouse",
      source: "demo-cron",
      domain: "platform",
      owners: ["sre", "dba"],
      labels: { env: "prod", tier: "" },
      paused: false,
      schedule: { expression: "0 1 * * *", timezone: "UTC", text: "at 01:00" },
      last_run_state: null,
    } as unknown as Parameters<typeof cellTitle>[0];
    expect(cellTitle(job, "name")).toBe(job.uid);
    expect(cellTitle(job, "labels")).toBe("env=prod, tier");
    expect(cellTitle(job, "owners")).toBe("sre, dba");
    expect(cellTitle(job, "schedule")).toBe("at 01:00 · 0 1 * * * · UTC");
    expect(cellTitle(job, "state")).toBe("never ran");
    expect(cellTitle(job, "source", { demo: true, simulator: true })).toBe("demo-cron (demo, simulator)");
  });
});
