import type { Run } from "../api/client";
import { fmtDuration, fmtTime } from "../format";
import { runHref } from "../router";

/** Run durations, oldest on the left, one bar per run coloured by state (plain SVG). */
export function DurationChart({ runs, height = 140 }: { runs: Run[]; height?: number }) {
  const data = runs
    .filter((r) => r.duration_s != null)
    .slice()
    .sort((a, b) => (a.started_at ?? "").localeCompare(b.started_at ?? ""));
  if (data.length < 2) return <p className="muted small">Not enough finished runs to chart durations.</p>;
  const max = Math.max(...data.map((r) => r.duration_s ?? 0), 1);
  const w = 1100;
  const pad = 70;
  const bw = Math.max(2, Math.min(24, (w - pad) / data.length - 2));
  const avg = data.reduce((a, r) => a + (r.duration_s ?? 0), 0) / data.length;
  const y = (v: number) => height - 18 - ((height - 28) * v) / max;
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${w} ${height}`} role="img" aria-label={`Durations of the last ${data.length} runs; longest ${fmtDuration(max)}, average ${fmtDuration(avg)}`}>
        <line x1={pad} x2={w} y1={y(0)} y2={y(0)} className="axis" />
        <text x={pad - 4} y={y(max) + 4} className="tick" textAnchor="end">
          {fmtDuration(max)}
        </text>
        <text x={pad - 4} y={y(0)} className="tick" textAnchor="end">
          0
        </text>
        <line x1={pad} x2={w} y1={y(avg)} y2={y(avg)} className="avg" />
        {data.map((r, i) => {
          const x = pad + i * ((w - pad) / data.length) + 1;
          const top = y(r.duration_s ?? 0);
          return (
            <a key={r.uid} href={runHref(r.uid)}>
              <rect x={x} y={top} width={bw} height={Math.max(1, y(0) - top)} className={`fill-${r.state}`}>
                <title>{`${fmtTime(r.started_at)} — ${r.state}, ${fmtDuration(r.duration_s)}`}</title>
              </rect>
            </a>
          );
        })}
      </svg>
      <figcaption className="muted small">
        {data.length} runs; dashed line: average {fmtDuration(avg)}.
      </figcaption>
    </figure>
  );
}
