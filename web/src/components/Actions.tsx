import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { type ActionResult, api, ApiError, unwrap } from "../api/client";
import { runHref } from "../router";
import { ConfirmDialog } from "./ui";

const VERB: Record<string, string> = {
  trigger: "Trigger a run",
  pause: "Pause",
  resume: "Resume",
  cancel: "Cancel run",
  retry: "Retry run",
};

export type Outcome =
  | { kind: "ok"; result: ActionResult }
  | { kind: "pending"; result: ActionResult }
  | { kind: "error"; error: ApiError };

export async function performAction(
  target: "job" | "run",
  uid: string,
  action: string,
  body: { reason?: string; emergency?: boolean },
): Promise<ActionResult> {
  const payload = { params: {}, reason: body.reason || null, emergency: !!body.emergency, hold: false };
  return target === "job"
    ? unwrap(api.POST("/api/v1/jobs/{uid}/{action}", { params: { path: { uid, action } }, body: payload }))
    : unwrap(api.POST("/api/v1/runs/{uid}/{action}", { params: { path: { uid, action } }, body: payload }));
}

/** The actions the subject may take (from `allowed_actions`), each behind a confirmation. */
export function ActionButtons({
  target,
  uid,
  actions,
  name,
}: {
  target: "job" | "run";
  uid: string;
  actions: string[];
  name: string;
}) {
  const qc = useQueryClient();
  const [open, setOpen] = useState<string | null>(null);
  const [reason, setReason] = useState("");
  const [emergency, setEmergency] = useState(false);
  const [blocked, setBlocked] = useState(false);
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const [dialogError, setDialogError] = useState<ApiError | null>(null);

  if (!actions.length)
    return <p className="muted small">You may not take any action here (or the tool supports none).</p>;

  const close = () => {
    setOpen(null);
    setReason("");
    setEmergency(false);
    setBlocked(false);
    setDialogError(null);
  };
  const run = async (action: string) => {
    setBusy(true);
    setDialogError(null);
    try {
      const result = await performAction(target, uid, action, { reason, emergency });
      setOutcome({ kind: result.outcome === "pending" ? "pending" : "ok", result });
      close();
      for (const k of ["job", "jobs", "runs", "run", "overview", "audit", "approvals"])
        void qc.invalidateQueries({ queryKey: [k] });
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError(0, "error", String(e));
      if (err.status === 423) {
        setBlocked(true);
        setDialogError(err);
      } else {
        setOutcome({ kind: "error", error: err });
        close();
      }
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="actions">
      <div className="btn-row">
        {actions.map((a) => (
          <button
            key={a}
            type="button"
            className={a === "cancel" ? "danger" : "primary"}
            onClick={() => {
              setOutcome(null);
              setOpen(a);
            }}
            data-testid={`action-${a}`}
          >
            {VERB[a] ?? a}
          </button>
        ))}
      </div>
      {outcome && (
        <div
          className={`banner ${outcome.kind === "error" ? "error" : outcome.kind === "pending" ? "warn" : "ok"}`}
          role={outcome.kind === "error" ? "alert" : "status"}
          data-testid="action-outcome"
        >
          {outcome.kind === "error" ? (
            <>
              <strong>Refused:</strong> {outcome.error.message}
            </>
          ) : outcome.kind === "pending" ? (
            <>
              <strong>Held for approval</strong> (request #{outcome.result.approval_id}): {outcome.result.message}.{" "}
              <a href="#/governance">See approvals</a>
            </>
          ) : (
            <>
              <strong>Done:</strong> {outcome.result.message}
              {outcome.result.run && (
                <>
                  {" "}
                  — <a href={runHref(outcome.result.run.uid)}>open the new run</a>
                </>
              )}
            </>
          )}
        </div>
      )}
      {open && (
        <ConfirmDialog
          title={`${VERB[open] ?? open}: ${name}?`}
          confirmLabel={emergency ? `${open} (emergency override)` : `Yes, ${open}`}
          onConfirm={() => void run(open)}
          onCancel={close}
          busy={busy}
          danger={open === "cancel" || emergency}
        >
          <p>
            This {open === "trigger" ? "starts a run in" : `sends ${open} to`} the tool that owns it. It is
            checked against policy and guardrails and recorded in the audit trail.
          </p>
          <label htmlFor="action-reason">Reason {emergency ? "(required for an override)" : "(optional, audited)"}</label>
          <textarea id="action-reason" rows={2} value={reason} onChange={(e) => setReason(e.target.value)} />
          {dialogError && (
            <p className="form-error" role="alert">
              {dialogError.message}
            </p>
          )}
          {blocked && (
            <label className="check">
              <input type="checkbox" checked={emergency} onChange={(e) => setEmergency(e.target.checked)} /> Emergency
              override of the freeze (needs a reason; audited as an override)
            </label>
          )}
        </ConfirmDialog>
      )}
    </div>
  );
}
