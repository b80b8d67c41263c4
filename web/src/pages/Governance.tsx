import { useInfiniteQuery, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, ApiError, type Approval, type PolicyView, unwrap } from "../api/client";
import { useAuth } from "../auth";
import { Card, ConfirmDialog, Empty, Q } from "../components/ui";
import { fmtAgo, fmtTime } from "../format";
import { useGuardrails } from "../queries";
import { jobHref } from "../router";

const VIOLATIONS_PAGE = 200;

function selectorText(sel: Record<string, unknown>): string {
  const parts: string[] = [];
  const d = sel.domains as string[] | undefined;
  const j = sel.jobs as string[] | undefined;
  const l = sel.labels as Record<string, string> | undefined;
  if (d?.length) parts.push(`domains ${d.join(", ")}`);
  if (j?.length) parts.push(`jobs ${j.join(", ")}`);
  if (l && Object.keys(l).length) parts.push(`labels ${Object.entries(l).map(([k, v]) => `${k}=${v}`).join(", ")}`);
  return parts.length ? parts.join("; ") : "every job";
}

function windowText(w: Record<string, unknown>): string {
  const tz = (w.timezone as string) ?? "UTC";
  if (w.end) return `${w.start} → ${w.end} (${tz})`;
  return `${w.start} for ${w.duration} (${tz})`;
}

export function Governance() {
  const { me, can } = useAuth();
  const rails = useGuardrails();
  const approvals = useQuery({ queryKey: ["approvals"], queryFn: () => unwrap(api.GET("/api/v1/approvals")) });
  const seesPolicy = Boolean(me?.can["apply-config"] || me?.can["export-audit"]);
  const policy = useQuery({
    queryKey: ["policy"],
    queryFn: () => unwrap(api.GET("/api/v1/policy")),
    enabled: seesPolicy,
  });
  const violations = useInfiniteQuery({
    queryKey: ["violations"],
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) =>
      unwrap(
        api.GET("/api/v1/violations", {
          params: {
            query: { status: "open", limit: VIOLATIONS_PAGE, cursor: pageParam, total: pageParam === undefined },
          },
        }),
      ),
    getNextPageParam: (last) => last.next_cursor ?? undefined,
  });
  return (
    <>
      <h1>Governance</h1>
      <div className="grid">
        <Card title="Guardrails" className="span-all">
          <Q q={rails} what="guardrails">
            {(gs) =>
              gs.length === 0 ? (
                <Empty>No guardrail applies to the jobs you can see.</Empty>
              ) : (
                <table className="table compact" data-testid="guardrails">
                  <thead>
                    <tr>
                      <th>name</th>
                      <th>type</th>
                      <th>now</th>
                      <th>actions</th>
                      <th>applies to</th>
                      <th>details</th>
                    </tr>
                  </thead>
                  <tbody>
                    {gs.map((g) => (
                      <tr key={g.name}>
                        <td>{g.name}</td>
                        <td>{g.type}</td>
                        <td>
                          {g.type === "freeze" ? (
                            g.active ? (
                              <span className="tag tag-freeze">in effect</span>
                            ) : (
                              <span className="muted">not in effect</span>
                            )
                          ) : (
                            <span className="tag">always</span>
                          )}
                        </td>
                        <td>{g.actions.join(", ")}</td>
                        <td>{g.type === "agent-limit" ? `subjects ${g.subjects.join(", ")}` : selectorText(g.selector)}</td>
                        <td className="small">
                          {g.type === "freeze" && g.windows.map((w, i) => <div key={i}>{windowText(w)}</div>)}
                          {g.type === "approval" && `${g.approvers} approver${g.approvers === 1 ? "" : "s"} other than the requester`}
                          {g.type === "agent-limit" && (g.rate_per_hour != null ? `at most ${g.rate_per_hour} per hour` : "no rate limit")}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )
            }
          </Q>
        </Card>
        <Card title="Approvals" className="span-all">
          <Q q={approvals} what="approvals">
            {(list) =>
              list.length === 0 ? (
                <Empty>No approval requests. Actions held by an approval guardrail appear here.</Empty>
              ) : (
                <ApprovalTable items={list} canApprove={can("approve")} me={me?.subject ?? ""} />
              )
            }
          </Q>
        </Card>
        <Card title="Open compliance violations" className="span-2">
          <Q q={violations} what="violations">
            {(data) => {
              const vs = data.pages.flatMap((p) => p.items);
              const total = data.pages[0]?.total ?? vs.length;
              return vs.length === 0 ? (
                <Empty>No open violation among the jobs you can see.</Empty>
              ) : (
                <>
                  <table className="table compact" data-testid="violations">
                    <thead>
                      <tr>
                        <th>rule</th>
                        <th>severity</th>
                        <th>job</th>
                        <th>since</th>
                      </tr>
                    </thead>
                    <tbody>
                      {vs.map((v) => (
                        <tr key={v.id}>
                          <td title={v.message}>{v.rule}</td>
                          <td>
                            <span className={`sev sev-${v.severity}`}>{v.severity}</span>
                          </td>
                          <td>
                            <a href={jobHref(v.job_uid)}>{v.job_uid}</a>
                          </td>
                          <td>{fmtAgo(v.first_seen)}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                  {violations.hasNextPage && (
                    <p className="muted small">
                      Showing {vs.length} of {total}.{" "}
                      <button
                        type="button"
                        disabled={violations.isFetchingNextPage}
                        onClick={() => void violations.fetchNextPage()}
                      >
                        {violations.isFetchingNextPage ? "Loading…" : "Show more"}
                      </button>
                    </p>
                  )}
                </>
              );
            }}
          </Q>
        </Card>
        <Card title="Roles and bindings">
          <p>Your roles:</p>
          <ul className="list">
            {me?.roles.map((r) => (
              <li key={`${r.role}@${r.domain}`}>
                <strong>{r.role}</strong> in {r.domain === "*" ? "every domain" : r.domain}
              </li>
            ))}
          </ul>
          <p>
            You may:{" "}
            {Object.entries(me?.can ?? {})
              .filter(([, v]) => v)
              .map(([k]) => k)
              .join(", ") || "nothing"}
            .
          </p>
          {seesPolicy ? (
            <Q q={policy} what="roles and bindings">
              {(p) => <PolicyTables view={p} />}
            </Q>
          ) : (
            <div className="banner info" data-testid="policy-restricted">
              The full list of roles and bindings is visible to those who administer or audit the
              configuration.
            </div>
          )}
        </Card>
      </div>
    </>
  );
}

function PolicyTables({ view }: { view: PolicyView }) {
  return (
    <>
      <h3>Roles</h3>
      <table className="table compact" data-testid="policy-roles">
        <thead>
          <tr>
            <th>role</th>
            <th>origin</th>
            <th>rules</th>
          </tr>
        </thead>
        <tbody>
          {view.roles.map((r) => (
            <tr key={r.name}>
              <td>{r.name}</td>
              <td>{r.origin}</td>
              <td>
                {r.rules
                  .map((x) => `${x.effect} ${x.actions.join(", ")} on ${x.objects.join(", ")}`)
                  .join("; ")}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3>Bindings</h3>
      {view.bindings.length === 0 ? (
        <Empty>No bindings.</Empty>
      ) : (
        <table className="table compact" data-testid="policy-bindings">
          <thead>
            <tr>
              <th>binding</th>
              <th>role</th>
              <th>subjects</th>
              <th>domains</th>
            </tr>
          </thead>
          <tbody>
            {view.bindings.map((b) => (
              <tr key={b.name}>
                <td>{b.name}</td>
                <td>{b.role}</td>
                <td>{b.subjects.join(", ")}</td>
                <td>{b.domains.join(", ")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

function ApprovalTable({ items, canApprove, me }: { items: Approval[]; canApprove: boolean; me: string }) {
  const qc = useQueryClient();
  const [deciding, setDeciding] = useState<{ a: Approval; approve: boolean } | null>(null);
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const decide = async () => {
    if (!deciding) return;
    setBusy(true);
    const path = deciding.approve ? "/api/v1/approvals/{request_id}/approve" : "/api/v1/approvals/{request_id}/reject";
    try {
      await unwrap(api.POST(path, { params: { path: { request_id: deciding.a.id } }, body: { reason: reason || null } }));
      setMsg({ ok: true, text: `Request #${deciding.a.id} ${deciding.approve ? "approved" : "rejected"}.` });
    } catch (e) {
      setMsg({ ok: false, text: e instanceof ApiError ? e.message : String(e) });
    } finally {
      setBusy(false);
      setDeciding(null);
      setReason("");
      void qc.invalidateQueries({ queryKey: ["approvals"] });
      void qc.invalidateQueries({ queryKey: ["audit"] });
    }
  };
  return (
    <>
      {msg && (
        <div className={`banner ${msg.ok ? "ok" : "error"}`} role={msg.ok ? "status" : "alert"}>
          {msg.text}
        </div>
      )}
      <table className="table compact" data-testid="approvals">
        <thead>
          <tr>
            <th>#</th>
            <th>action</th>
            <th>job</th>
            <th>requested by</th>
            <th>status</th>
            <th>approvals</th>
            <th>expires</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {items.map((a) => (
            <tr key={a.id}>
              <td>{a.id}</td>
              <td>{a.action}</td>
              <td>
                <a href={jobHref(a.job_uid)}>{a.job_uid}</a>
              </td>
              <td>
                {a.requested_by}
                {a.reason && <div className="muted small">“{a.reason}”</div>}
              </td>
              <td>
                {a.status}
                {a.outcome && <div className="muted small">{a.outcome}</div>}
              </td>
              <td>
                {a.approved_by.length}/{a.approvals_needed}
              </td>
              <td title={fmtTime(a.expires_at)}>{fmtAgo(a.expires_at)}</td>
              <td>
                {a.status === "pending" && canApprove && a.requested_by !== me && (
                  <span className="btn-row">
                    <button type="button" onClick={() => setDeciding({ a, approve: true })}>
                      Approve
                    </button>
                    <button type="button" className="danger" onClick={() => setDeciding({ a, approve: false })}>
                      Reject
                    </button>
                  </span>
                )}
                {a.status === "pending" && a.requested_by === me && <span className="muted small">yours: someone else approves</span>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {deciding && (
        <ConfirmDialog
          title={`${deciding.approve ? "Approve" : "Reject"} request #${deciding.a.id} (${deciding.a.action} ${deciding.a.job_uid})?`}
          confirmLabel={deciding.approve ? "Approve" : "Reject"}
          danger={!deciding.approve}
          busy={busy}
          onCancel={() => setDeciding(null)}
          onConfirm={() => void decide()}
        >
          <label htmlFor="decision-reason">Reason (audited)</label>
          <textarea id="decision-reason" rows={2} value={reason} onChange={(e) => setReason(e.target.value)} />
        </ConfirmDialog>
      )}
    </>
  );
}
