import { useInfiniteQuery, useMutation, useQuery } from "@tanstack/react-query";
import { useMemo, useState } from "react";
import { api, ApiError, authHeaders, toApiError, unwrap } from "../api/client";
import { useAuth } from "../auth";
import { saveBlob, stamp, toJsonl } from "../audit";
import { SelectFilter, TextFilter } from "../components/Filters";
import { Card, Empty, ErrorState, Loading } from "../components/ui";
import { fmtTime } from "../format";
import { type Route, setParams } from "../router";

const FILTERS = ["subject", "action", "target", "decision", "since", "until"] as const;

function toIso(v: string | undefined): string | undefined {
  if (!v) return undefined;
  const d = new Date(v);
  return isNaN(d.getTime()) ? undefined : d.toISOString();
}

export function Audit({ route }: { route: Route }) {
  const { can } = useAuth();
  const f = useMemo(() => {
    const o: Partial<Record<(typeof FILTERS)[number], string>> = {};
    for (const k of FILTERS) {
      const v = route.params.get(k);
      if (v) o[k] = v;
    }
    return o;
  }, [route.params]);
  const q = useInfiniteQuery({
    queryKey: ["audit", "list", f],
    initialPageParam: undefined as number | undefined,
    queryFn: ({ pageParam }) =>
      unwrap(
        api.GET("/api/v1/audit", {
          params: {
            query: {
              ...f,
              // From the address bar: the API answers a value it does not know with a
              // 422 that names the allowed ones, which the error state shows.
              decision: f.decision as "allow" | "deny" | undefined,
              since: toIso(f.since),
              until: toIso(f.until),
              limit: 200,
              before: pageParam,
            },
          },
        }),
      ),
    getNextPageParam: (last) => (last.next_cursor ? Number(last.next_cursor) : undefined),
  });
  const rows = useMemo(() => q.data?.pages.flatMap((p) => p.items) ?? [], [q.data]);
  const set = (k: string) => (v: string) => setParams(route, { [k]: v || null });
  const verify = useMutation({ mutationFn: () => unwrap(api.GET("/api/v1/audit/verify")) });
  const signingKey = useQuery({
    queryKey: ["audit-public-key"],
    queryFn: () => unwrap(api.GET("/api/v1/audit/public-key")),
    staleTime: Infinity,
  });
  const [format, setFormat] = useState("jsonl");
  const [exportMsg, setExportMsg] = useState<{ ok: boolean; text: string } | null>(null);

  const serverExport = async () => {
    setExportMsg(null);
    const qs = new URLSearchParams({ format });
    const since = toIso(f.since);
    const until = toIso(f.until);
    if (since) qs.set("since", since);
    if (until) qs.set("until", until);
    try {
      const res = await fetch(`/api/v1/audit/export?${qs}`, { headers: authHeaders() });
      if (!res.ok) throw await toApiError(res, await res.json().catch(() => null));
      const name = /filename="?([^";]+)"?/.exec(res.headers.get("content-disposition") ?? "")?.[1] ?? `audit-${stamp()}.zip`;
      saveBlob(await res.blob(), name);
      setExportMsg({ ok: true, text: `Downloaded ${name}: the records and a signed manifest (verify offline with accord audit verify-export --public-key KEY).` });
    } catch (e) {
      const err = e instanceof ApiError ? e : null;
      setExportMsg({
        ok: false,
        text:
          err?.message ?? String(e),
      });
    }
  };
  const clientExport = () => {
    const name = `audit-list-${stamp()}.jsonl`;
    saveBlob(new Blob([toJsonl(rows)], { type: "application/x-ndjson" }), name);
    setExportMsg({ ok: true, text: `Downloaded ${name} (${rows.length} records as listed; made in the browser, not signed).` });
  };

  return (
    <>
      <h1>Audit</h1>
      <div className="grid">
        <Card title="Integrity" className="span-2">
          {can("export-audit") ? (
            <>
              <p className="small">
                Each record's hash covers the previous one; the gateway recomputes the whole chain.
              </p>
              <button type="button" onClick={() => verify.mutate()} disabled={verify.isPending} data-testid="verify">
                {verify.isPending ? "Verifying…" : "Verify the hash chain"}
              </button>
              {verify.data && (
                <div className={`banner ${verify.data.ok ? "ok" : "error"}`} role="status" data-testid="verify-result">
                  {verify.data.ok ? (
                    <>
                      <strong>Chain intact:</strong> {String(verify.data.count)} records, head{" "}
                      <code>{String(verify.data.head_hash).slice(0, 16)}…</code>
                    </>
                  ) : (
                    <>
                      <strong>Chain broken</strong> at record #{String(verify.data.first_bad_seq)}: {String(verify.data.problem)}
                    </>
                  )}
                </div>
              )}
              {verify.isError && <ErrorState error={verify.error} />}
            </>
          ) : (
            <p className="muted">Verifying the whole chain needs the export-audit permission (auditor or admin).</p>
          )}
        </Card>
        <Card title="Export">
          {can("export-audit") && (
            <div className="btn-row">
              <select aria-label="export format" value={format} onChange={(e) => setFormat(e.target.value)}>
                <option value="jsonl">JSONL</option>
                <option value="csv">CSV</option>
                <option value="ocsf">OCSF</option>
              </select>
              <button type="button" className="primary" onClick={() => void serverExport()} data-testid="export-signed">
                Signed export (zip)
              </button>
            </div>
          )}
          <p className="small">
            {can("export-audit")
              ? "The signed export covers the time filters, made by the gateway with a manifest. "
              : "Signed exports need the export-audit permission. "}
          </p>
          <div className="small" data-testid="audit-public-key">
            Exports are signed with{" "}
            {signingKey.data ? (
              <>
                {signingKey.data.origin === "configured" ? "the configured key" : "this installation's own key"}, public key{" "}
                <code className="wrap">{signingKey.data.public_key}</code> ({signingKey.data.algorithm}). Give it to whoever
                verifies exports: <code>accord audit verify-export FILE --public-key KEY</code>.
              </>
            ) : signingKey.isError ? (
              <span className="warn-text">a key that cannot be read: {signingKey.error.message}</span>
            ) : (
              "…"
            )}
          </div>
          <button type="button" onClick={clientExport} disabled={!rows.length} data-testid="export-client">
            Download this list as JSONL (made in the browser)
          </button>
          {exportMsg && (
            <div className={`banner ${exportMsg.ok ? "ok" : "error"}`} role="status" data-testid="export-result">
              {exportMsg.text}
            </div>
          )}
        </Card>
      </div>
      <form className="filters" role="search" aria-label="Filter audit records" onSubmit={(e) => e.preventDefault()}>
        <TextFilter id="a-subject" label="subject" value={f.subject ?? ""} onChange={set("subject")} />
        <TextFilter id="a-action" label="action" value={f.action ?? ""} onChange={set("action")} placeholder="trigger, login, …" />
        <TextFilter id="a-target" label="target" value={f.target ?? ""} onChange={set("target")} placeholder="job or run uid" />
        <SelectFilter id="a-decision" label="decision" value={f.decision ?? ""} options={["allow", "deny"]} onChange={set("decision")} />
        <div className="field">
          <label htmlFor="a-since">since</label>
          <input id="a-since" type="datetime-local" value={f.since ?? ""} onChange={(e) => set("since")(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor="a-until">until</label>
          <input id="a-until" type="datetime-local" value={f.until ?? ""} onChange={(e) => set("until")(e.target.value)} />
        </div>
      </form>
      {q.isPending ? (
        <Loading what="audit records" />
      ) : q.isError ? (
        <ErrorState error={q.error} retry={() => q.refetch()} />
      ) : rows.length === 0 ? (
        <Empty>No audit record matches.</Empty>
      ) : (
        <>
          <div className="table-wrap">
          <table className="table compact" data-testid="audit-table">
            <thead>
              <tr>
                <th className="num">#</th>
                <th>at</th>
                <th>subject</th>
                <th>channel</th>
                <th>action</th>
                <th>target</th>
                <th>domain</th>
                <th>decision</th>
                <th>outcome</th>
                <th>reason</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.seq} className={r.decision === "deny" ? "row-deny" : ""}>
                  <td className="num" title={`hash ${r.hash}`}>
                    {r.seq}
                  </td>
                  <td>{fmtTime(r.at)}</td>
                  <td>{r.subject}</td>
                  <td>{r.channel}</td>
                  <td>{r.action}</td>
                  <td className="wrap">{r.target}</td>
                  <td>{r.domain}</td>
                  <td>{r.decision}</td>
                  <td>{r.outcome}</td>
                  <td className="wrap small">{r.reason ?? (r.policy ? <span className="muted">{r.policy}</span> : "")}</td>
                </tr>
              ))}
            </tbody>
          </table>
          </div>
          {q.hasNextPage && (
            <button type="button" onClick={() => void q.fetchNextPage()} disabled={q.isFetchingNextPage}>
              {q.isFetchingNextPage ? "Loading…" : "Load older records"}
            </button>
          )}
        </>
      )}
    </>
  );
}
