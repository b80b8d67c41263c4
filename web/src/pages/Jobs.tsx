import { useInfiniteQuery } from "@tanstack/react-query";
import {
  type ColumnDef,
  flexRender,
  getCoreRowModel,
  getSortedRowModel,
  type SortingState,
  useReactTable,
} from "@tanstack/react-table";
import { useVirtualizer } from "@tanstack/react-virtual";
import { useCallback, useEffect, useMemo, useRef } from "react";
import { api, type Job, type Schemas, type Source, unwrap } from "../api/client";
import { SelectFilter, TextFilter } from "../components/Filters";
import { Empty, ErrorState, Labels, Loading, SourceTags, StateBadge } from "../components/ui";
import { fmtAgo, RUN_STATES } from "../format";
import { useSources } from "../queries";
import { jobHref, type Route, setParams } from "../router";

type RunStateName = Schemas["RunState"] | undefined;

export const JOB_FILTERS = ["source", "domain", "state", "label", "owner", "q", "paused"] as const;
export type JobFilters = Partial<Record<(typeof JOB_FILTERS)[number], string>>;
const PAGE = 500;
const ROW_HEIGHT = 37;
/** Up to this many matches are loaded at once, so sorting covers all of them. */
export const LOAD_ALL_UP_TO = 5000;

export function filtersFrom(params: URLSearchParams): JobFilters {
  const f: JobFilters = {};
  for (const k of JOB_FILTERS) {
    const v = params.get(k);
    if (v) f[k] = v;
  }
  return f;
}

/** The full text of a cell, shown as its tooltip when the column cuts it. */
export function cellTitle(j: Job, column: string, source?: { demo?: boolean; simulator?: boolean }): string {
  switch (column) {
    case "name":
      return j.uid;
    case "state":
      return j.last_run_state ?? "never ran";
    case "last_run_at":
      return j.last_run_at ?? "";
    case "schedule":
      return j.paused
        ? "paused"
        : [j.schedule?.text, j.schedule?.expression, j.schedule?.timezone].filter(Boolean).join(" · ");
    case "next_run_at":
      return j.next_run_at ?? "";
    case "owners":
      return j.owners.join(", ") || "no owner";
    case "labels":
      return Object.entries(j.labels)
        .map(([k, v]) => (v ? `${k}=${v}` : k))
        .join(", ");
    case "source": {
      const tags = [source?.demo && "demo", source?.simulator && "simulator"].filter(Boolean);
      return tags.length ? `${j.source} (${tags.join(", ")})` : j.source;
    }
    case "domain":
      return j.domain;
    default:
      return "";
  }
}

export function sortingFrom(params: URLSearchParams): SortingState {
  const s = params.get("sort");
  if (!s) return [];
  const [id, dir] = s.split(":");
  return id ? [{ id, desc: dir === "desc" }] : [];
}

function columns(sources: Map<string, Source>): ColumnDef<Job>[] {
  return [
    {
      id: "name",
      header: "job",
      accessorFn: (j) => j.name,
      cell: ({ row }) => (
        <a href={jobHref(row.original.uid)} title={row.original.uid}>
          {row.original.name}
        </a>
      ),
      size: 200,
    },
    {
      id: "source",
      header: "source",
      accessorFn: (j) => j.source,
      cell: ({ row }) => {
        const s = sources.get(row.original.source);
        return (
          <>
            {row.original.source} <SourceTags demo={s?.demo} simulator={s?.simulator} />
          </>
        );
      },
      size: 195,
    },
    { id: "domain", header: "domain", accessorFn: (j) => j.domain, size: 85 },
    {
      id: "state",
      header: "last run",
      accessorFn: (j) => j.last_run_state ?? "",
      cell: ({ row }) => <StateBadge state={row.original.last_run_state} />,
      size: 90,
    },
    {
      id: "last_run_at",
      header: "last run at",
      accessorFn: (j) => j.last_run_at ?? "",
      cell: ({ row }) => fmtAgo(row.original.last_run_at),
      size: 100,
    },
    {
      id: "schedule",
      header: "schedule",
      accessorFn: (j) => j.schedule?.text ?? j.schedule?.expression ?? "",
      cell: ({ row }) => {
        const s = row.original.schedule;
        if (row.original.paused) return <span className="tag tag-paused">paused</span>;
        return s ? <span>{s.text ?? s.expression}</span> : "—";
      },
      size: 140,
    },
    {
      id: "next_run_at",
      header: "next run",
      accessorFn: (j) => j.next_run_at ?? "",
      cell: ({ row }) => (row.original.next_run_at ? fmtAgo(row.original.next_run_at) : "—"),
      size: 90,
    },
    {
      id: "owners",
      header: "owners",
      accessorFn: (j) => j.owners.join(", "),
      cell: ({ row }) =>
        row.original.owners.length ? row.original.owners.join(", ") : <span className="warn-text">none</span>,
      size: 110,
    },
    {
      id: "labels",
      header: "labels",
      enableSorting: false,
      accessorFn: (j) => Object.keys(j.labels).join(","),
      cell: ({ row }) => <Labels labels={row.original.labels} />,
      size: 160,
    },
  ];
}

export function Jobs({ route }: { route: Route }) {
  const filters = useMemo(() => filtersFrom(route.params), [route.params]);
  const sorting = useMemo(() => sortingFrom(route.params), [route.params]);
  const sourcesQ = useSources();
  const sources = useMemo(
    () => new Map((sourcesQ.data ?? []).map((s) => [s.name, s])),
    [sourcesQ.data],
  );
  const domains = useMemo(
    () => Array.from(new Set((sourcesQ.data ?? []).map((s) => s.domain))).sort(),
    [sourcesQ.data],
  );
  const q = useInfiniteQuery({
    queryKey: ["jobs", filters],
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) =>
      unwrap(
        api.GET("/api/v1/jobs", {
          params: {
            query: {
              ...filters,
              // From the address bar; an unknown state answers 422 naming the known ones.
              state: filters.state as RunStateName,
              paused: filters.paused ? filters.paused === "true" : undefined,
              limit: PAGE,
              cursor: pageParam,
              total: pageParam === undefined,
            },
          },
        }),
      ),
    getNextPageParam: (last) => last.next_cursor ?? undefined,
  });
  const rows = useMemo(() => q.data?.pages.flatMap((p) => p.items) ?? [], [q.data]);
  // When every page is loaded the rows are the exact count; the API's `total` is used only
  // while more pages remain.
  const total = q.data && !q.hasNextPage ? rows.length : (q.data?.pages[0]?.total ?? null);
  const set = useCallback(
    (k: string) => (v: string) => setParams(route, { [k]: v || null }),
    [route],
  );

  // Load everything when the match set is small enough, so sorting is over all matches.
  useEffect(() => {
    if (q.hasNextPage && !q.isFetchingNextPage && total !== null && total <= LOAD_ALL_UP_TO) {
      void q.fetchNextPage();
    }
  }, [q, total]);

  const cols = useMemo(() => columns(sources), [sources]);
  const table = useReactTable({
    data: rows,
    columns: cols,
    state: { sorting },
    onSortingChange: (up) => {
      const next = typeof up === "function" ? up(sorting) : up;
      const s = next[0];
      setParams(route, { sort: s ? `${s.id}:${s.desc ? "desc" : "asc"}` : null });
    },
    getCoreRowModel: getCoreRowModel(),
    getSortedRowModel: getSortedRowModel(),
    // Columns are resizable by dragging the right edge of a header.
    enableColumnResizing: true,
    columnResizeMode: "onChange",
    defaultColumn: { minSize: 60, maxSize: 800 },
  });
  const tableRows = table.getRowModel().rows;
  const scrollRef = useRef<HTMLDivElement>(null);
  const virt = useVirtualizer({
    count: tableRows.length,
    getScrollElement: () => scrollRef.current,
    // Rows have a fixed height (CSS), so nothing is measured while scrolling.
    estimateSize: () => ROW_HEIGHT,
    overscan: 12,
  });
  const items = virt.getVirtualItems();
  const lastIndex = items.length ? items[items.length - 1].index : 0;
  useEffect(() => {
    if (lastIndex >= rows.length - 50 && q.hasNextPage && !q.isFetchingNextPage) {
      void q.fetchNextPage();
    }
  }, [lastIndex, rows.length, q]);

  const active = Object.keys(filters).length > 0;
  const padTop = items.length ? items[0].start : 0;
  const padBottom = items.length ? virt.getTotalSize() - items[items.length - 1].end : 0;

  return (
    <>
      <h1>Jobs</h1>
      <form className="filters" role="search" aria-label="Filter jobs" onSubmit={(e) => e.preventDefault()}>
        <TextFilter id="f-q" label="text" value={filters.q ?? ""} onChange={set("q")} placeholder="name, uid, description" />
        <SelectFilter
          id="f-source"
          label="source"
          value={filters.source ?? ""}
          options={(sourcesQ.data ?? []).map((s) => [s.name, s.demo ? `${s.name} (demo)` : s.name] as [string, string])}
          onChange={set("source")}
        />
        <SelectFilter id="f-domain" label="domain" value={filters.domain ?? ""} options={domains} onChange={set("domain")} />
        <SelectFilter id="f-state" label="last-run state" value={filters.state ?? ""} options={[...RUN_STATES]} onChange={set("state")} />
        <TextFilter id="f-label" label="label" value={filters.label ?? ""} onChange={set("label")} placeholder="key or key=value" />
        <TextFilter id="f-owner" label="owner" value={filters.owner ?? ""} onChange={set("owner")} />
        <SelectFilter
          id="f-paused"
          label="paused"
          value={filters.paused ?? ""}
          options={[["true", "paused"], ["false", "not paused"]]}
          onChange={set("paused")}
        />
        {active && (
          <button type="button" className="link" onClick={() => setParams(route, Object.fromEntries(JOB_FILTERS.map((k) => [k, null])))}>
            Clear filters
          </button>
        )}
      </form>
      <p className="muted small" role="status" data-testid="jobs-count">
        {q.isPending
          ? "Loading…"
          : total !== null
            ? `${total} job${total === 1 ? "" : "s"}${active ? " match" : ""}` +
              (rows.length < total ? ` — ${rows.length} loaded${sorting.length ? "; sorting covers the loaded rows (the list loads more as you scroll)" : ""}` : "")
            : `${rows.length} jobs`}
        {" · "}the filters are in the address: copy it to share this view.
      </p>
      {q.isPending ? (
        <Loading what="jobs" />
      ) : q.isError ? (
        <ErrorState error={q.error} retry={() => q.refetch()} />
      ) : rows.length === 0 ? (
        <Empty>
          {active ? "No job matches these filters." : "No jobs are visible to you yet: sources may still be syncing."}
        </Empty>
      ) : (
        <div className="table-scroll" ref={scrollRef} tabIndex={0} aria-label="jobs table, scrollable">
          <table
            className="table sticky"
            data-testid="jobs-table"
            aria-rowcount={tableRows.length}
            style={{ width: table.getTotalSize(), minWidth: "100%" }}
          >
            <thead>
              {table.getHeaderGroups().map((hg) => (
                <tr key={hg.id}>
                  {hg.headers.map((h) => {
                    const sorted = h.column.getIsSorted();
                    return (
                      <th
                        key={h.id}
                        style={{ width: h.getSize(), position: "sticky" }}
                        aria-sort={sorted === "asc" ? "ascending" : sorted === "desc" ? "descending" : undefined}
                      >
                        {h.column.getCanSort() ? (
                          <button type="button" className="th-sort" onClick={h.column.getToggleSortingHandler()}>
                            {flexRender(h.column.columnDef.header, h.getContext())}
                            <span aria-hidden="true">{sorted === "asc" ? " ▲" : sorted === "desc" ? " ▼" : ""}</span>
                          </button>
                        ) : (
                          flexRender(h.column.columnDef.header, h.getContext())
                        )}
                        <span
                          aria-hidden="true"
                          title="drag to resize; double-click to reset"
                          className={`th-resize${h.column.getIsResizing() ? " is-resizing" : ""}`}
                          onMouseDown={h.getResizeHandler()}
                          onTouchStart={h.getResizeHandler()}
                          onDoubleClick={() => h.column.resetSize()}
                          data-testid={`resize-${h.id}`}
                        />
                      </th>
                    );
                  })}
                </tr>
              ))}
            </thead>
            <tbody>
              {padTop > 0 && (
                <tr aria-hidden="true">
                  <td style={{ height: padTop }} colSpan={cols.length} />
                </tr>
              )}
              {items.map((vi) => {
                const row = tableRows[vi.index];
                return (
                  <tr key={row.id} data-index={vi.index} aria-rowindex={vi.index + 2}>
                    {row.getVisibleCells().map((c) => (
                      <td key={c.id} title={cellTitle(row.original, c.column.id, sources.get(row.original.source))} style={{ width: c.column.getSize() }}>
                        {flexRender(c.column.columnDef.cell, c.getContext())}
                      </td>
                    ))}
                  </tr>
                );
              })}
              {padBottom > 0 && (
                <tr aria-hidden="true">
                  <td style={{ height: padBottom }} colSpan={cols.length} />
                </tr>
              )}
            </tbody>
          </table>
          {q.isFetchingNextPage && <Loading what="more jobs" />}
        </div>
      )}
    </>
  );
}
