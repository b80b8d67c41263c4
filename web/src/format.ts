export const RUN_STATES = [
  "queued",
  "running",
  "waiting",
  "success",
  "failed",
  "cancelled",
  "skipped",
  "unknown",
] as const;

export function fmtDuration(seconds: number | null | undefined): string {
  if (seconds == null || !isFinite(seconds)) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.floor(seconds % 60)} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

export function fmtTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, {
    year: "numeric",
    month: "short",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

export function fmtAgo(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "never";
  const t = new Date(iso).getTime();
  if (isNaN(t)) return iso;
  const s = (now - t) / 1000;
  const future = s < 0;
  const a = Math.abs(s);
  let text: string;
  if (a < 45) text = `${Math.round(a)} s`;
  else if (a < 3600) text = `${Math.round(a / 60)} min`;
  else if (a < 86400 * 2) text = `${Math.round(a / 3600)} h`;
  else text = `${Math.round(a / 86400)} d`;
  return future ? `in ${text}` : `${text} ago`;
}

export function durationOf(r: {
  started_at?: string | null;
  ended_at?: string | null;
  duration_s?: number | null;
}): number | null {
  if (r.duration_s != null) return r.duration_s;
  if (r.started_at && !r.ended_at) return (Date.now() - new Date(r.started_at).getTime()) / 1000;
  return null;
}

export function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}
