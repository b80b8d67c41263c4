import { QueryClient } from "@tanstack/react-query";
import { describe, expect, it, vi } from "vitest";
import type { LineageEdge, LineageNode, Run, StatsRow } from "../api/client";
import { toJsonl } from "../audit";
import { groupStats, totalsByState } from "../components/StateBars";
import { fmtAgo, fmtDuration } from "../format";
import { highlights, layeredLayout, layout, reach } from "../lineage";
import { keysFor, makeInvalidator } from "../live";
import { filtersFrom, sortingFrom } from "../pages/Jobs";
import { lanes, spanOf } from "../pages/Runs";
import { href, jobHref, parseHash } from "../router";
import { SseParser } from "../sse";

describe("SseParser", () => {
  it("assembles messages split across chunks and skips comments", () => {
    const p = new SseParser();
    expect(p.push(": connected\n\nevent: run.chan")).toEqual([]);
    expect(p.push('ged\ndata: {"uid":"a/1"}\n\n: keep-alive\n\nevent: action\r\ndata: x\r\ndata: y\r\n\r\n')).toEqual([
      { event: "run.changed", data: '{"uid":"a/1"}' },
      { event: "action", data: "x\ny" },
    ]);
  });
});

describe("router", () => {
  it("decodes job uids with slashes and keeps the filters", () => {
    const r = parseHash(`${jobHref("demo-etl/ingest orders")}`);
    expect(r.segments).toEqual(["jobs", "demo-etl/ingest orders"]);
    const f = parseHash("#/jobs?source=demo-etl&state=failed&label=env%3Dprod&sort=name:desc&junk=1");
    expect(filtersFrom(f.params)).toEqual({ source: "demo-etl", state: "failed", label: "env=prod" });
    expect(sortingFrom(f.params)).toEqual([{ id: "name", desc: true }]);
  });
  it("builds links without empty parameters", () => {
    expect(href("/jobs", { source: "a", domain: "", q: null })).toBe("#/jobs?source=a");
    expect(href("/runs")).toBe("#/runs");
  });
});

const N = (uid: string, kind = "job"): LineageNode => ({ uid, kind, name: uid, tombstoned: false });
const E = (src: string, dst: string, kind = "depends_on"): LineageEdge => ({
  kind,
  src,
  dst,
  evidence: "",
  reported_by: "t",
});

describe("lineage", () => {
  // a -> b -> c -> d, x -> c
  const nodes = ["a", "b", "c", "d", "x"].map((u) => N(u));
  const edges = [E("a", "b"), E("b", "c"), E("c", "d"), E("x", "c")];

  it("follows edges downstream and upstream", () => {
    expect([...reach(edges, "b", "down")].sort()).toEqual(["c", "d"]);
    expect([...reach(edges, "c", "up")].sort()).toEqual(["a", "b", "x"]);
    expect(reach([...edges, E("d", "a")], "a", "down").has("a")).toBe(false); // cycles end
  });

  it("highlights lineage, or only the impact downstream", () => {
    const both = highlights(nodes, edges, "b", false);
    expect(Object.fromEntries(both)).toEqual({ a: "upstream", b: "selected", c: "downstream", d: "downstream", x: "dim" });
    const impact = highlights(nodes, edges, "b", true);
    expect(impact.get("a")).toBe("dim");
    expect(impact.get("d")).toBe("downstream");
    expect(new Set(highlights(nodes, edges, null, true).values())).toEqual(new Set(["none"]));
  });

  it("lays out every node left to right along the edges", () => {
    const pos = layout(nodes, edges);
    expect(pos.size).toBe(5);
    for (const e of edges) expect(pos.get(e.src)!.x).toBeLessThan(pos.get(e.dst)!.x);
  });
});

describe("overview grouping", () => {
  const rows: StatsRow[] = [
    { source: "s1", domain: "data", state: "success", count: 5 },
    { source: "s1", domain: "data", state: "failed", count: 2 },
    { source: "s2", domain: "data", state: "success", count: 1 },
    { source: "s3", domain: "ops", state: "failed", count: 4 },
  ];
  it("groups by source or domain, largest first", () => {
    expect(groupStats(rows, "source").map((g) => [g.key, g.total])).toEqual([
      ["s1", 7],
      ["s3", 4],
      ["s2", 1],
    ]);
    const byDomain = groupStats(rows, "domain");
    expect(byDomain[0]).toEqual({ key: "data", counts: { success: 6, failed: 2 }, total: 8 });
    expect(totalsByState(rows)).toEqual({ success: 6, failed: 6 });
  });
});

describe("formatting", () => {
  it("formats durations and relative times", () => {
    expect(fmtDuration(null)).toBe("—");
    expect(fmtDuration(0.25)).toBe("250 ms");
    expect(fmtDuration(75)).toBe("1 min 15 s");
    expect(fmtDuration(239.8)).toBe("3 min 59 s");
    expect(fmtDuration(3 * 3600 + 120)).toBe("3 h 2 min");
    const now = Date.parse("2026-01-01T12:00:00Z");
    expect(fmtAgo("2026-01-01T11:58:00Z", now)).toBe("2 min ago");
    expect(fmtAgo("2026-01-01T15:00:00Z", now)).toBe("in 3 h");
    expect(fmtAgo(null, now)).toBe("never");
  });
});

const run = (uid: string, job: string, started: string, ended: string | null, state = "success"): Run =>
  ({
    uid,
    source: job.split("/")[0],
    job_uid: job,
    domain: "d",
    state,
    trigger: "schedule",
    started_at: started,
    ended_at: ended,
    queued_at: null,
    observed_at: started,
    attempt: 1,
  }) as Run;

describe("runs timeline", () => {
  it("puts each job in one lane, grouped by source, runs oldest first", () => {
    const rs = [
      run("b/j@2", "b/j", "2026-01-01T02:00:00Z", "2026-01-01T02:10:00Z"),
      run("a/k@1", "a/k", "2026-01-01T01:00:00Z", null, "running"),
      run("b/j@1", "b/j", "2026-01-01T01:00:00Z", "2026-01-01T01:05:00Z"),
    ];
    const ls = lanes(rs);
    expect(ls.map((l) => l.job)).toEqual(["a/k", "b/j"]);
    expect(ls[1].runs.map((r) => r.uid)).toEqual(["b/j@1", "b/j@2"]);
    const now = Date.parse("2026-01-01T03:00:00Z");
    expect(spanOf(rs[1], now)).toEqual([Date.parse("2026-01-01T01:00:00Z"), now]); // still running
  });
});

describe("live updates", () => {
  it("maps events to the queries they make stale", () => {
    expect(keysFor({ event: "run.changed", data: "{}" })).toContainEqual(["overview"]);
    const targeted = keysFor({ event: "run.changed", data: '{"uid":"a/1","job_uid":"a/j"}' });
    expect(targeted).toContainEqual(["run", "a/1"]);
    expect(targeted).toContainEqual(["job", "a/j"]);
    expect(targeted).not.toContainEqual(["run"]); // not every open run page
    expect(keysFor({ event: "action", data: "{}" })).toContainEqual(["audit"]);
    expect(keysFor({ event: "other", data: "{}" })).toEqual([]);
  });
  it("batches a burst of events into one invalidation per key", () => {
    vi.useFakeTimers();
    const qc = new QueryClient();
    const spy = vi.spyOn(qc, "invalidateQueries").mockResolvedValue();
    const inv = makeInvalidator(qc, 500);
    for (let i = 0; i < 50; i++) inv.add([["runs"], ["overview"]]);
    expect(spy).not.toHaveBeenCalled();
    vi.advanceTimersByTime(600);
    expect(spy.mock.calls.map((c) => c[0]?.queryKey)).toEqual([["runs"], ["overview"]]);
    vi.useRealTimers();
  });
  it("refreshes the heavy lists at most once per interval during a long burst", () => {
    vi.useFakeTimers();
    const qc = new QueryClient();
    const spy = vi.spyOn(qc, "invalidateQueries").mockResolvedValue();
    const inv = makeInvalidator(qc, 500, 10000);
    // a run changes every 200 ms for 30 s
    for (let t = 0; t < 30000; t += 200) {
      inv.add(keysFor({ event: "run.changed", data: `{"uid":"a/${t}","job_uid":"a/j"}` }));
      vi.advanceTimersByTime(200);
    }
    vi.advanceTimersByTime(11000);
    const runsRefetches = spy.mock.calls.filter((c) => JSON.stringify(c[0]?.queryKey) === '["runs"]');
    expect(runsRefetches.length).toBeGreaterThanOrEqual(3);
    expect(runsRefetches.length).toBeLessThanOrEqual(5); // not 60 (one per batch)
    inv.stop();
    vi.useRealTimers();
  });
});

describe("audit export", () => {
  it("writes one JSON record per line", () => {
    const recs = [{ seq: 2, action: "trigger" }, { seq: 1, action: "login" }] as never[];
    const text = toJsonl(recs);
    expect(text.trimEnd().split("\n").map((l) => JSON.parse(l).seq)).toEqual([2, 1]);
    expect(toJsonl([])).toBe("");
  });
});

describe("layered layout for large graphs", () => {
  it("places 2,000 nodes in rank order quickly, without overlaps", () => {
    const n = 2000;
    const nodes = Array.from({ length: n }, (_, i) => N(`j${i}`));
    const edges = Array.from({ length: n - 1 }, (_, k) => E(`j${Math.floor(k / 7)}`, `j${k + 1}`));
    edges.push(E("j1999", "j0")); // a cycle must not hang it
    const t0 = performance.now();
    const pos = layeredLayout(nodes, edges);
    expect(performance.now() - t0).toBeLessThan(500);
    expect(pos.size).toBe(n);
    for (const e of edges.slice(0, -1)) expect(pos.get(e.src)!.x).toBeLessThan(pos.get(e.dst)!.x);
    const seen = new Set([...pos.values()].map((p) => `${p.x},${p.y}`));
    expect(seen.size).toBe(n);
    expect(layout(nodes, edges)).toEqual(pos); // large graphs take this path
  });
});
