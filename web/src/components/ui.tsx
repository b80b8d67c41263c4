import type { UseQueryResult } from "@tanstack/react-query";
import { useEffect, useId, useRef, useState } from "react";
import type { ReactNode } from "react";
import { ApiError } from "../api/client";

export function StateBadge({ state }: { state: string | null | undefined }) {
  const s = state ?? "none";
  return (
    <span className={`state state-${s}`} data-state={s}>
      {state ?? "no runs"}
    </span>
  );
}

/** Demo sources and simulators are always labelled as such. */
export function SourceTags({ demo, simulator }: { demo?: boolean; simulator?: boolean }) {
  return (
    <>
      {demo && (
        <span className="tag tag-demo" title="sample data from the demo federation">
          demo
        </span>
      )}
      {simulator && (
        <span className="tag tag-sim" title="an API-faithful simulator, not the real system">
          simulator
        </span>
      )}
    </>
  );
}

export function HealthBadge({ health }: { health: string }) {
  return <span className={`health health-${health}`}>{health}</span>;
}

export function Loading({ what }: { what: string }) {
  return (
    <div className="placeholder" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" /> Loading {what}…
    </div>
  );
}

export function ErrorState({ error, retry }: { error: unknown; retry?: () => void }) {
  const e = error instanceof ApiError ? error : null;
  const msg = e ? e.message : error instanceof Error ? error.message : String(error);
  return (
    <div className="placeholder error" role="alert">
      <strong>{e?.status === 403 ? "Not allowed" : e?.status === 404 ? "Not found" : "Something went wrong"}</strong>
      <p>{msg}</p>
      {e && e.code && <p className="muted small">code: {e.code}</p>}
      {retry && (
        <button type="button" onClick={retry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="placeholder empty">{children}</div>;
}

/** Loading / error / content for one query. */
export function Q<T>({
  q,
  what,
  children,
}: {
  q: UseQueryResult<T>;
  what: string;
  children: (data: T) => ReactNode;
}) {
  if (q.isPending) return <Loading what={what} />;
  if (q.isError) return <ErrorState error={q.error} retry={() => q.refetch()} />;
  return <>{children(q.data)}</>;
}

export function Card({
  title,
  children,
  actions,
  className,
}: {
  title: ReactNode;
  children: ReactNode;
  actions?: ReactNode;
  className?: string;
}) {
  const id = useId();
  return (
    <section className={`card ${className ?? ""}`} aria-labelledby={id}>
      <header className="card-head">
        <h2 id={id}>{title}</h2>
        {actions && <div className="card-actions">{actions}</div>}
      </header>
      <div className="card-body">{children}</div>
    </section>
  );
}

export function Kpi({
  label,
  value,
  tone,
  href,
  testid,
}: {
  label: string;
  value: ReactNode;
  tone?: "bad" | "warn" | "good";
  href?: string;
  testid?: string;
}) {
  const body = (
    <>
      <span className="kpi-value" data-testid={testid}>
        {value}
      </span>
      <span className="kpi-label">{label}</span>
    </>
  );
  return href ? (
    <a className={`kpi ${tone ?? ""}`} href={href}>
      {body}
    </a>
  ) : (
    <div className={`kpi ${tone ?? ""}`}>{body}</div>
  );
}

/** A modal confirmation; Escape cancels, focus starts on the first field and stays inside. */
export function ConfirmDialog({
  title,
  children,
  confirmLabel,
  onConfirm,
  onCancel,
  busy,
  danger,
}: {
  title: string;
  children?: ReactNode;
  confirmLabel: string;
  onConfirm: () => void;
  onCancel: () => void;
  busy?: boolean;
  danger?: boolean;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const id = useId();
  useEffect(() => {
    const el = ref.current;
    const first = el?.querySelector<HTMLElement>("textarea, input, button");
    first?.focus();
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") onCancel();
      if (e.key === "Tab" && el) {
        const items = Array.from(
          el.querySelectorAll<HTMLElement>("button, input, textarea, select, a[href]"),
        ).filter((x) => !x.hasAttribute("disabled"));
        if (!items.length) return;
        const [a, z] = [items[0], items[items.length - 1]];
        if (e.shiftKey && document.activeElement === a) {
          e.preventDefault();
          z.focus();
        } else if (!e.shiftKey && document.activeElement === z) {
          e.preventDefault();
          a.focus();
        }
      }
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [onCancel]);
  return (
    <div className="backdrop" onMouseDown={(e) => e.target === e.currentTarget && onCancel()}>
      <div className="dialog" role="dialog" aria-modal="true" aria-labelledby={id} ref={ref}>
        <h2 id={id}>{title}</h2>
        {children}
        <div className="dialog-actions">
          <button type="button" onClick={onCancel} disabled={busy}>
            Cancel
          </button>
          <button
            type="button"
            className={danger ? "danger" : "primary"}
            onClick={onConfirm}
            disabled={busy}
            data-testid="confirm"
          >
            {busy ? "Working…" : confirmLabel}
          </button>
        </div>
      </div>
    </div>
  );
}

export function Copy({ text }: { text: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      className="link small"
      onClick={() => {
        void navigator.clipboard?.writeText(text).then(() => setDone(true));
      }}
    >
      {done ? "copied" : "copy"}
    </button>
  );
}

export function Labels({ labels }: { labels: Record<string, string> }) {
  const entries = Object.entries(labels);
  if (!entries.length) return <span className="muted">—</span>;
  return (
    <span className="labels">
      {entries.map(([k, v]) => (
        <span key={k} className="label">
          {v ? `${k}=${v}` : k}
        </span>
      ))}
    </span>
  );
}
